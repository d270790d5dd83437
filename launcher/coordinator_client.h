// The client side of the Coordinator for agents, pdsd-ctl and the rendezvous benchmark: one channel,
// the job's credentials on every call, and a deadline on every call. Methods return the gRPC status;
// callers decide what a failure means for them (an agent counts heartbeat failures, pdsd-ctl prints).
//
//   CoordinatorClient client("10.0.0.1:29400", security);
//   v1::JoinResponse joined;
//   grpc::Status s = client.join(request, std::chrono::seconds(900), joined);
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>

#include "launcher/control_security.h"
#include "pdsd/control.grpc.pb.h"

namespace pdsd {

class CoordinatorClient {
 public:
  CoordinatorClient(std::string endpoint, ControlSecurity security);

  // Join retries while the coordinator is not up yet (its host may start later), until `timeout`.
  grpc::Status join(v1::JoinRequest request, std::chrono::milliseconds timeout, v1::JoinResponse& out);
  grpc::Status start_attempt(const std::string& agent_id, int attempt, std::chrono::milliseconds timeout,
                             v1::StartAttemptResponse& out);
  grpc::Status heartbeat(const std::string& agent_id, int attempt, std::chrono::milliseconds timeout, v1::HeartbeatResponse& out);
  grpc::Status report_exit(v1::WorkersExitRequest request, std::chrono::milliseconds timeout, v1::WorkersExitResponse& out);
  grpc::Status status(std::chrono::milliseconds timeout, v1::StatusResponse& out);
  grpc::Status checkpoint(std::chrono::milliseconds timeout, v1::CheckpointResponse& out);
  grpc::Status stop(const std::string& reason, std::chrono::milliseconds timeout, v1::StopResponse& out);

  const std::string& endpoint() const { return endpoint_; }

 private:
  std::string endpoint_;
  ControlSecurity security_;
  std::unique_ptr<v1::Coordinator::Stub> stub_;
};

// "UNAVAILABLE: failed to connect ..." for messages.
std::string describe(const grpc::Status& status);

}  // namespace pdsd
