#include "launcher/kv_store_service.h"

#include <algorithm>
#include <chrono>

#include "common/error.h"
#include "launcher/control_security.h"

namespace pdsd {

grpc::Status check_protocol_version(uint32_t theirs) {
  if (theirs == v1::PROTOCOL_VERSION) return grpc::Status::OK;
  return {grpc::StatusCode::FAILED_PRECONDITION,
          str("protocol version mismatch: peer speaks ", theirs, ", this coordinator speaks ",
              static_cast<int>(v1::PROTOCOL_VERSION), "; run the same pdsd build on every node")};
}

grpc::Status KeyValueStoreService::admit(const grpc::ServerContext* context, uint32_t version, const char* method) const {
  if (!token_.empty()) {
    if (auto s = check_call(context, token_, method); !s.ok()) return s;
  }
  return check_protocol_version(version);
}

grpc::Status KeyValueStoreService::Set(grpc::ServerContext* context, const v1::SetRequest* request, v1::SetResponse*) {
  if (auto s = admit(context, request->protocol_version(), "KeyValueStore/Set"); !s.ok()) return s;
  if (request->key().empty()) return {grpc::StatusCode::INVALID_ARGUMENT, "Set: empty key"};
  {
    std::lock_guard lock(mutex_);
    values_[request->key()] = request->value();
  }
  changed_.notify_all();
  return grpc::Status::OK;
}

grpc::Status KeyValueStoreService::Get(grpc::ServerContext* context, const v1::GetRequest* request,
                                       v1::GetResponse* response) {
  if (auto s = admit(context, request->protocol_version(), "KeyValueStore/Get"); !s.ok()) return s;
  if (request->keys().empty()) return {grpc::StatusCode::INVALID_ARGUMENT, "Get: no keys"};
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(std::min(request->timeout_ms(), kMaxWaitMs));
  std::unique_lock lock(mutex_);
  auto all_present = [&] {
    return std::all_of(request->keys().begin(), request->keys().end(),
                       [&](const std::string& k) { return values_.count(k) > 0; });
  };
  // Wake at least every 100 ms to notice a cancelled call (client gone or past its own deadline).
  while (!all_present()) {
    if (context->IsCancelled()) return {grpc::StatusCode::CANCELLED, "Get: the caller went away"};
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      std::string missing;
      for (const auto& k : request->keys()) {
        if (!values_.count(k)) missing += (missing.empty() ? "" : ", ") + k;
      }
      return {grpc::StatusCode::DEADLINE_EXCEEDED,
              str("Get: keys not set within ", request->timeout_ms(), " ms: ", missing)};
    }
    changed_.wait_for(lock, std::min<std::chrono::steady_clock::duration>(deadline - now, std::chrono::milliseconds(100)));
  }
  for (const auto& k : request->keys()) response->add_values(values_[k]);
  return grpc::Status::OK;
}

grpc::Status KeyValueStoreService::Add(grpc::ServerContext* context, const v1::AddRequest* request, v1::AddResponse* response) {
  if (auto s = admit(context, request->protocol_version(), "KeyValueStore/Add"); !s.ok()) return s;
  if (request->key().empty()) return {grpc::StatusCode::INVALID_ARGUMENT, "Add: empty key"};
  int64_t value = 0;
  {
    std::lock_guard lock(mutex_);
    std::string& stored = values_[request->key()];
    if (!stored.empty()) {
      try {
        value = std::stoll(stored);
      } catch (const std::exception&) {
        return {grpc::StatusCode::FAILED_PRECONDITION, str("Add: key '", request->key(), "' does not hold a counter")};
      }
    }
    value += request->delta();
    stored = std::to_string(value);
  }
  changed_.notify_all();
  response->set_value(value);
  return grpc::Status::OK;
}

}  // namespace pdsd
