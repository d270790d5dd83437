#include "launcher/coordinator_client.h"

#include <thread>

#include "common/error.h"

namespace pdsd {

namespace {
const char* code_name(grpc::StatusCode code) {
  switch (code) {
    case grpc::OK: return "OK";
    case grpc::CANCELLED: return "CANCELLED";
    case grpc::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::NOT_FOUND: return "NOT_FOUND";
    case grpc::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::UNAUTHENTICATED: return "UNAUTHENTICATED";
    case grpc::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::ABORTED: return "ABORTED";
    case grpc::UNAVAILABLE: return "UNAVAILABLE";
    default: return "ERROR";
  }
}
}  // namespace

std::string describe(const grpc::Status& status) { return str(code_name(status.error_code()), ": ", status.error_message()); }

CoordinatorClient::CoordinatorClient(std::string endpoint, ControlSecurity security)
    : endpoint_(std::move(endpoint)), security_(std::move(security)),
      stub_(v1::Coordinator::NewStub(control_channel(endpoint_, security_))) {}

grpc::Status CoordinatorClient::join(v1::JoinRequest request, std::chrono::milliseconds timeout, v1::JoinResponse& out) {
  request.set_protocol_version(v1::PROTOCOL_VERSION);
  const auto give_up = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(give_up - std::chrono::steady_clock::now());
    grpc::ClientContext context;
    // The coordinator bounds the wait itself (join timeout); the margin lets its answer arrive.
    prepare_call(context, security_, left + std::chrono::seconds(5));
    grpc::Status s = stub_->Join(&context, request, &out);
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE || std::chrono::steady_clock::now() >= give_up) return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the coordinator's host is not up yet
  }
}

grpc::Status CoordinatorClient::start_attempt(const std::string& agent_id, int attempt, std::chrono::milliseconds timeout,
                                              v1::StartAttemptResponse& out) {
  v1::StartAttemptRequest request;
  request.set_protocol_version(v1::PROTOCOL_VERSION);
  request.set_agent_id(agent_id);
  request.set_attempt(attempt);
  request.set_timeout_ms(static_cast<uint32_t>(timeout.count()));
  grpc::ClientContext context;
  prepare_call(context, security_, timeout + std::chrono::seconds(5));
  return stub_->StartAttempt(&context, request, &out);
}

namespace {
// One unary call: the protocol version stamped, the token (and TLS) attached, the deadline set.
template <class Request, class Call>
grpc::Status unary(Request& request, const ControlSecurity& security, std::chrono::milliseconds timeout, Call&& call) {
  request.set_protocol_version(v1::PROTOCOL_VERSION);
  grpc::ClientContext context;
  prepare_call(context, security, timeout);
  return call(&context);
}
}  // namespace

grpc::Status CoordinatorClient::heartbeat(const std::string& agent_id, int attempt, std::chrono::milliseconds timeout,
                                          v1::HeartbeatResponse& out) {
  v1::HeartbeatRequest request;
  request.set_agent_id(agent_id);
  request.set_attempt(attempt);
  return unary(request, security_, timeout, [&](grpc::ClientContext* c) { return stub_->Heartbeat(c, request, &out); });
}

grpc::Status CoordinatorClient::report_exit(v1::WorkersExitRequest request, std::chrono::milliseconds timeout,
                                            v1::WorkersExitResponse& out) {
  return unary(request, security_, timeout,
               [&](grpc::ClientContext* c) { return stub_->ReportWorkersExit(c, request, &out); });
}

grpc::Status CoordinatorClient::status(std::chrono::milliseconds timeout, v1::StatusResponse& out) {
  v1::StatusRequest request;
  return unary(request, security_, timeout, [&](grpc::ClientContext* c) { return stub_->GetStatus(c, request, &out); });
}

grpc::Status CoordinatorClient::checkpoint(std::chrono::milliseconds timeout, v1::CheckpointResponse& out) {
  v1::CheckpointRequest request;
  return unary(request, security_, timeout,
               [&](grpc::ClientContext* c) { return stub_->RequestCheckpoint(c, request, &out); });
}

grpc::Status CoordinatorClient::stop(const std::string& reason, std::chrono::milliseconds timeout, v1::StopResponse& out) {
  v1::StopRequest request;
  request.set_reason(reason);
  return unary(request, security_, timeout, [&](grpc::ClientContext* c) { return stub_->RequestStop(c, request, &out); });
}

}  // namespace pdsd
