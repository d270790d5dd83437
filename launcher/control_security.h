// Who may talk to a job's control plane: every call carries the job's token (metadata
// `authorization: Bearer <token>`), and the connection can be mutual TLS from given PEM files.
// Agents, workers and pdsd-ctl build their channels here; the coordinator checks every call here.
//
//   ControlSecurity security{.token = generate_job_token()};
//   auto channel = control_channel("10.0.0.1:29400", security);
//   grpc::ClientContext ctx;  prepare_call(ctx, security, std::chrono::seconds(2));
//   // server side, first line of every handler:
//   if (auto s = check_call(context, token, "Coordinator/Join"); !s.ok()) return s;
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

namespace pdsd {

struct ControlSecurity {
  std::string token;    // the job's secret; never logged in full (token_fingerprint)
  std::string tls_cert;  // PEM files; all three or none. The same certificate serves as server and
  std::string tls_key;   // client certificate, and the CA verifies the peer on both sides (mutual TLS).
  std::string tls_ca;
  bool tls() const { return !tls_cert.empty(); }
};

// 32 random bytes from the kernel as 64 hex digits.
std::string generate_job_token();
// What logs show of a token: its first 4 characters and "…".
std::string token_fingerprint(std::string_view token);
// Throws InputError naming the option when only some TLS files are given or one cannot be read.
void validate_tls_files(const ControlSecurity& security);

std::shared_ptr<grpc::ServerCredentials> server_credentials(const ControlSecurity& security);
std::shared_ptr<grpc::Channel> control_channel(const std::string& endpoint, const ControlSecurity& security);
// Sets the token metadata and a deadline `timeout` from now on a call about to be made.
void prepare_call(grpc::ClientContext& context, const ControlSecurity& security, std::chrono::milliseconds timeout);

// OK when the call carries `authorization: Bearer <expected>`; UNAUTHENTICATED otherwise (missing,
// malformed or wrong), logged once per call with the peer and the method. Constant-time compare.
grpc::Status check_call(const grpc::ServerContext* context, const std::string& expected, std::string_view method);

}  // namespace pdsd
