#include "launcher/control_server.h"

#include "common/error.h"
#include "common/log.h"

namespace pdsd {

ControlServer::ControlServer(const Endpoint& listen, const ControlSecurity& security, CoordinatorOptions options)
    : coordinator_([&] { options.token = security.token; return options; }()), kv_(security.token), bound_(listen) {
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  int port = 0;
  builder.AddListeningPort(listen.str(), server_credentials(security), &port);
  builder.RegisterService(&coordinator_);
  builder.RegisterService(&kv_);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port == 0) {
    throw Error(str("cannot serve the control plane on ", listen.str(), " (address in use or not on this host)"));
  }
  bound_.port = port;
}

ControlServer::~ControlServer() {
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  server_->Wait();
}

}  // namespace pdsd
