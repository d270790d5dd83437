// Who may talk to a job's control plane, over real gRPC on loopback: calls without the job token,
// with a wrong one, with a malformed authorization header, or with a body that is not a protobuf
// message are refused (UNAUTHENTICATED / an error, never served); a peer speaking another protocol
// version is refused with a message naming both versions; and with mutual TLS (certificates made
// by openssl at test time) a client with a certificate from the job's CA gets in, one without
// a certificate does not.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "common/error.h"
#include "launcher/control_security.h"
#include "launcher/control_server.h"
#include "launcher/coordinator_client.h"

namespace fs = std::filesystem;

namespace {

const std::string kToken = "a-job-token-0123456789abcdef";

pdsd::CoordinatorOptions options() { return {.rdzv_id = "job", .min_nodes = 1, .max_nodes = 1}; }

class ControlPlaneSecurity : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<pdsd::ControlServer>(pdsd::Endpoint{"127.0.0.1", 0}, pdsd::ControlSecurity{.token = kToken}, options());
    channel_ = grpc::CreateChannel(server_->endpoint().str(), grpc::InsecureChannelCredentials());
    coordinator_ = pdsd::v1::Coordinator::NewStub(channel_);
    kv_ = pdsd::v1::KeyValueStore::NewStub(channel_);
  }
  // A status call with `authorization` set to `header` ("" : none).
  grpc::Status status_with(const std::string& header, uint32_t version = pdsd::v1::PROTOCOL_VERSION) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!header.empty()) ctx.AddMetadata("authorization", header);
    pdsd::v1::StatusRequest request;
    request.set_protocol_version(version);
    pdsd::v1::StatusResponse out;
    return coordinator_->GetStatus(&ctx, request, &out);
  }
  grpc::Status kv_set_with(const std::string& header) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!header.empty()) ctx.AddMetadata("authorization", header);
    pdsd::v1::SetRequest request;
    request.set_protocol_version(pdsd::v1::PROTOCOL_VERSION);
    request.set_key("k");
    request.set_value("v");
    pdsd::v1::SetResponse out;
    return kv_->Set(&ctx, request, &out);
  }
  std::unique_ptr<pdsd::ControlServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pdsd::v1::Coordinator::Stub> coordinator_;
  std::unique_ptr<pdsd::v1::KeyValueStore::Stub> kv_;
};

TEST_F(ControlPlaneSecurity, TheRightTokenIsServed) {
  EXPECT_TRUE(status_with("Bearer " + kToken).ok());
  EXPECT_TRUE(kv_set_with("Bearer " + kToken).ok());
}

TEST_F(ControlPlaneSecurity, NoTokenIsRefused) {
  auto s = status_with("");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  EXPECT_NE(s.error_message().find("no job token"), std::string::npos) << s.error_message();
  EXPECT_EQ(kv_set_with("").error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(ControlPlaneSecurity, AWrongTokenIsRefused) {
  for (const std::string& wrong : {"Bearer " + kToken + "x", "Bearer " + kToken.substr(1), std::string("Bearer nope")}) {
    auto s = status_with(wrong);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << wrong;
    EXPECT_NE(s.error_message().find("wrong job token"), std::string::npos) << s.error_message();
    EXPECT_EQ(s.error_message().find(kToken), std::string::npos) << "the refusal must not echo the token";
  }
  EXPECT_EQ(kv_set_with("Bearer wrong").error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(ControlPlaneSecurity, AMalformedHeaderIsRefused) {
  for (const std::string& bad : {kToken, "Basic " + kToken, std::string("Bearer "), std::string("bearer ") + kToken}) {
    auto s = status_with(bad);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << bad;
    EXPECT_NE(s.error_message().find("malformed"), std::string::npos) << bad << ": " << s.error_message();
  }
}

TEST_F(ControlPlaneSecurity, AMalformedBodyIsRefused) {
  // Bytes that are no JoinRequest: gRPC refuses them before any handler runs.
  grpc::GenericStub generic(channel_);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  ctx.AddMetadata("authorization", "Bearer " + kToken);
  const char garbage[] = "\xff\xff\xff\xff\xff\x0f not a protobuf";
  grpc::Slice slice(garbage, sizeof garbage - 1);
  grpc::ByteBuffer request(&slice, 1), response;
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  generic.UnaryCall(&ctx, "/pdsd.v1.Coordinator/Join", grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
    std::lock_guard lock(m);
    status = s;
    done = true;
    cv.notify_all();
  });
  std::unique_lock lock(m);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(15), [&] { return done; }));
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
}

TEST_F(ControlPlaneSecurity, AnotherProtocolVersionIsRefusedByName) {
  auto s = status_with("Bearer " + kToken, pdsd::v1::PROTOCOL_VERSION + 1);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("protocol version mismatch: peer speaks 2, this coordinator speaks 1"), std::string::npos)
      << s.error_message();
  s = status_with("Bearer " + kToken, 0);  // a peer that sets no version at all
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST(JobToken, GeneratedTokensAreLongRandomAndShownOnlyByFingerprint) {
  std::string a = pdsd::generate_job_token(), b = pdsd::generate_job_token();
  EXPECT_EQ(a.size(), 64u);
  EXPECT_NE(a, b);
  EXPECT_EQ(pdsd::token_fingerprint(a), a.substr(0, 4) + "…");
}

// Mutual TLS with a CA, a server/client certificate for 127.0.0.1, and a client certificate from
// another CA, all made with openssl here.
class MutualTls : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("pdsd-tls-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    const std::string d = dir_.string();
    std::string script =
        "set -e; cd " + d + "; "
        "make_ca() { openssl req -x509 -newkey rsa:2048 -nodes -keyout $1.key -out $1.pem -days 2 -subj /CN=$1 2>/dev/null; }; "
        "make_cert() { openssl req -newkey rsa:2048 -nodes -keyout $1.key -out $1.csr -subj /CN=$1 2>/dev/null; "
        "  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth,clientAuth\\n' > $1.ext; "
        "  openssl x509 -req -in $1.csr -CA $2.pem -CAkey $2.key -CAcreateserial -out $1.pem -days 2 -extfile $1.ext 2>/dev/null; }; "
        "make_ca ca; make_ca other_ca; make_cert node ca; make_cert intruder other_ca";
    ASSERT_EQ(std::system(("bash -c '" + escape(script) + "'").c_str()), 0) << "openssl failed";
  }
  void TearDown() override { fs::remove_all(dir_); }
  static std::string escape(const std::string& s) {
    std::string out;
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out;
  }
  pdsd::ControlSecurity files(const std::string& cert, const std::string& ca) const {
    return {.token = kToken, .tls_cert = (dir_ / (cert + ".pem")).string(), .tls_key = (dir_ / (cert + ".key")).string(),
            .tls_ca = (dir_ / (ca + ".pem")).string()};
  }
  fs::path dir_;
};

TEST_F(MutualTls, AClientWithTheJobsCertificateGetsIn) {
  pdsd::ControlServer server({"127.0.0.1", 0}, files("node", "ca"), options());
  pdsd::CoordinatorClient client(server.endpoint().str(), files("node", "ca"));
  pdsd::v1::StatusResponse out;
  auto s = client.status(std::chrono::seconds(10), out);
  EXPECT_TRUE(s.ok()) << pdsd::describe(s);
  EXPECT_EQ(out.rdzv_id(), "job");
}

TEST_F(MutualTls, ClientsWithoutTlsOrWithAForeignCertificateAreRefused) {
  pdsd::ControlServer server({"127.0.0.1", 0}, files("node", "ca"), options());
  pdsd::v1::StatusResponse out;
  // Plain text to a TLS port, a certificate from another CA, and TLS without a client certificate.
  pdsd::CoordinatorClient plain(server.endpoint().str(), pdsd::ControlSecurity{.token = kToken});
  EXPECT_FALSE(plain.status(std::chrono::seconds(5), out).ok());
  pdsd::CoordinatorClient intruder(server.endpoint().str(), files("intruder", "ca"));
  EXPECT_FALSE(intruder.status(std::chrono::seconds(5), out).ok());
  grpc::SslCredentialsOptions no_cert;
  no_cert.pem_root_certs = [&] { std::ifstream in(dir_ / "ca.pem"); return std::string(std::istreambuf_iterator<char>(in), {}); }();
  auto stub = pdsd::v1::Coordinator::NewStub(grpc::CreateChannel(server.endpoint().str(), grpc::SslCredentials(no_cert)));
  grpc::ClientContext ctx;
  pdsd::prepare_call(ctx, pdsd::ControlSecurity{.token = kToken}, std::chrono::seconds(5));
  pdsd::v1::StatusRequest request;
  request.set_protocol_version(pdsd::v1::PROTOCOL_VERSION);
  EXPECT_FALSE(stub->GetStatus(&ctx, request, &out).ok());
}

TEST(TlsFiles, SomeButNotAllFilesAreAnInputError) {
  EXPECT_THROW(pdsd::validate_tls_files({.tls_cert = "/x.pem"}), pdsd::InputError);
  EXPECT_THROW(pdsd::validate_tls_files({.tls_cert = "/no/such.pem", .tls_key = "/no/such.key", .tls_ca = "/no/ca.pem"}),
               pdsd::InputError);
}

}  // namespace
