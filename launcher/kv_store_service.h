// The control plane's key-value store (proto/pdsd/control.proto, service KeyValueStore): set, get
// with a blocking wait and a timeout, and atomic add. It will carry the NCCL unique id and back the
// CPU collectives' rendezvous; its semantics follow c10d's Store so either can stand in for the other.
//
//   KeyValueStoreService kv;
//   builder.RegisterService(&kv);
#pragma once

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <string>

#include "pdsd/control.grpc.pb.h"

namespace pdsd {

class KeyValueStoreService final : public pdsd::v1::KeyValueStore::Service {
 public:
  // `token`: every call must carry it (control_security.h); empty: no check.
  explicit KeyValueStoreService(std::string token = {}) : token_(std::move(token)) {}

  // Longest wait a Get may ask for; longer requests are clamped so a handler thread is never held forever.
  static constexpr uint32_t kMaxWaitMs = 30 * 60 * 1000;

  grpc::Status Set(grpc::ServerContext*, const v1::SetRequest*, v1::SetResponse*) override;
  grpc::Status Get(grpc::ServerContext*, const v1::GetRequest*, v1::GetResponse*) override;
  grpc::Status Add(grpc::ServerContext*, const v1::AddRequest*, v1::AddResponse*) override;

 private:
  grpc::Status admit(const grpc::ServerContext* context, uint32_t version, const char* method) const;
  std::string token_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, std::string> values_;
};

// FAILED_PRECONDITION naming both versions when a peer speaks another protocol version.
grpc::Status check_protocol_version(uint32_t theirs);

}  // namespace pdsd
