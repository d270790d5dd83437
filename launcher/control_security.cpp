#include "launcher/control_security.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "common/log.h"

namespace pdsd {

namespace {

std::string read_pem(const std::string& path, const char* option) {
  std::ifstream in(path);
  if (!in) throw InputError(str(option, " '", path, "': cannot read the file"));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

bool equal_constant_time(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

std::string generate_job_token() {
  unsigned char bytes[32];
  int fd = PDSD_SYSCALL(::open("/dev/urandom", O_RDONLY | O_CLOEXEC));
  ssize_t n = ::read(fd, bytes, sizeof bytes);
  ::close(fd);
  PDSD_CHECK(n == static_cast<ssize_t>(sizeof bytes), "short read from /dev/urandom");
  static const char* hex = "0123456789abcdef";
  std::string token;
  for (unsigned char b : bytes) token += hex[b >> 4], token += hex[b & 15];
  return token;
}

std::string token_fingerprint(std::string_view token) {
  if (token.empty()) return "(none)";
  return std::string(token.substr(0, 4)) + "…";
}

void validate_tls_files(const ControlSecurity& s) {
  const int given = !s.tls_cert.empty() + !s.tls_key.empty() + !s.tls_ca.empty();
  if (given != 0 && given != 3) {
    throw InputError("mutual TLS needs all of --tls-cert, --tls-key and --tls-ca (or PDSD_TLS_CERT/KEY/CA)");
  }
  if (given == 3) {
    read_pem(s.tls_cert, "--tls-cert");
    read_pem(s.tls_key, "--tls-key");
    read_pem(s.tls_ca, "--tls-ca");
  }
}

std::shared_ptr<grpc::ServerCredentials> server_credentials(const ControlSecurity& s) {
  if (!s.tls()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = read_pem(s.tls_ca, "--tls-ca");
  options.pem_key_cert_pairs.push_back({read_pem(s.tls_key, "--tls-key"), read_pem(s.tls_cert, "--tls-cert")});
  return grpc::SslServerCredentials(options);
}

std::shared_ptr<grpc::Channel> control_channel(const std::string& endpoint, const ControlSecurity& s) {
  grpc::ChannelArguments args;
  // Each agent, worker and tool gets its own connection: a shared one would make one slow peer's
  // flow control everyone's problem, and the rendezvous benchmark must measure separate agents.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // Fail fast while the coordinator is not up yet; callers retry within their own deadlines.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  if (!s.tls()) return grpc::CreateCustomChannel(endpoint, grpc::InsecureChannelCredentials(), args);
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = read_pem(s.tls_ca, "--tls-ca");
  options.pem_private_key = read_pem(s.tls_key, "--tls-key");
  options.pem_cert_chain = read_pem(s.tls_cert, "--tls-cert");
  return grpc::CreateCustomChannel(endpoint, grpc::SslCredentials(options), args);
}

void prepare_call(grpc::ClientContext& context, const ControlSecurity& s, std::chrono::milliseconds timeout) {
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  context.AddMetadata("authorization", "Bearer " + s.token);
}

grpc::Status check_call(const grpc::ServerContext* context, const std::string& expected, std::string_view method) {
  const auto& metadata = context->client_metadata();
  auto refuse = [&](const std::string& why) {
    log::warn("refused ", method, " from ", context->peer(), ": ", why);
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, str(method, ": ", why));
  };
  auto range = metadata.equal_range("authorization");
  if (range.first == range.second) return refuse("no job token (metadata 'authorization: Bearer <token>')");
  if (std::next(range.first) != range.second) return refuse("more than one authorization header");
  std::string_view value(range.first->second.data(), range.first->second.size());
  constexpr std::string_view kScheme = "Bearer ";
  if (value.substr(0, kScheme.size()) != kScheme || value.size() == kScheme.size()) {
    return refuse("malformed authorization header (want 'Bearer <token>')");
  }
  if (!equal_constant_time(value.substr(kScheme.size()), expected)) return refuse("wrong job token");
  return grpc::Status::OK;
}

}  // namespace pdsd
