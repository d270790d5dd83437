// The gRPC server of a job's control plane, inside the agent that hosts it: the Coordinator and the
// KeyValueStore on one address, bound exactly where it is told (no SO_REUSEPORT, so a second agent
// on the same host cannot bind the same port by accident), with the job's credentials.
//
//   ControlServer server({"127.0.0.1", 29400}, security, coordinator_options);
//   server.endpoint();  // "127.0.0.1:29400" (port 0 asks for a free one)
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "launcher/control_security.h"
#include "launcher/coordinator_service.h"
#include "launcher/endpoint.h"
#include "launcher/kv_store_service.h"

namespace pdsd {

class ControlServer {
 public:
  // Throws Error naming the address when it cannot be bound.
  ControlServer(const Endpoint& listen, const ControlSecurity& security, CoordinatorOptions options);
  ~ControlServer();  // shuts the server down (in-flight calls get CANCELLED within a second)

  Endpoint endpoint() const { return bound_; }
  CoordinatorService& coordinator() { return coordinator_; }

 private:
  CoordinatorService coordinator_;
  KeyValueStoreService kv_;
  std::unique_ptr<grpc::Server> server_;
  Endpoint bound_;
};

}  // namespace pdsd
