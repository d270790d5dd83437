// The control plane's key-value store over real gRPC on loopback: set/get, a Get that waits for a
// key set later, a Get that times out naming the missing keys, atomic add from many threads, and a
// peer with another protocol version refused with a clear message.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <thread>

#include "launcher/kv_store_service.h"

namespace {

class KvStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = pdsd::v1::KeyValueStore::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port_), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override { server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5)); }

  static void deadline(grpc::ClientContext& ctx) {
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  }
  grpc::Status set(const std::string& key, const std::string& value, uint32_t version = pdsd::v1::PROTOCOL_VERSION) {
    grpc::ClientContext ctx;
    deadline(ctx);
    pdsd::v1::SetRequest r;
    r.set_protocol_version(version);
    r.set_key(key);
    r.set_value(value);
    pdsd::v1::SetResponse out;
    return stub_->Set(&ctx, r, &out);
  }
  grpc::Status get(const std::vector<std::string>& keys, uint32_t timeout_ms, pdsd::v1::GetResponse& out) {
    grpc::ClientContext ctx;
    deadline(ctx);
    pdsd::v1::GetRequest r;
    r.set_protocol_version(pdsd::v1::PROTOCOL_VERSION);
    for (const auto& k : keys) r.add_keys(k);
    r.set_timeout_ms(timeout_ms);
    return stub_->Get(&ctx, r, &out);
  }

  pdsd::KeyValueStoreService service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<pdsd::v1::KeyValueStore::Stub> stub_;
  int port_ = 0;
};

TEST_F(KvStoreTest, SetThenGet) {
  ASSERT_TRUE(set("a", "1").ok());
  ASSERT_TRUE(set("b", "2").ok());
  pdsd::v1::GetResponse out;
  ASSERT_TRUE(get({"a", "b"}, 100, out).ok());
  ASSERT_EQ(out.values_size(), 2);
  EXPECT_EQ(out.values(0), "1");
  EXPECT_EQ(out.values(1), "2");
}

TEST_F(KvStoreTest, GetWaitsForALaterSet) {
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_TRUE(set("late", "x").ok());
  });
  pdsd::v1::GetResponse out;
  auto t0 = std::chrono::steady_clock::now();
  grpc::Status s = get({"late"}, 5000, out);
  writer.join();
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(out.values(0), "x");
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(150));
}

TEST_F(KvStoreTest, GetTimesOutNamingMissingKeys) {
  ASSERT_TRUE(set("present", "1").ok());
  pdsd::v1::GetResponse out;
  grpc::Status s = get({"present", "absent"}, 200, out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_NE(s.error_message().find("not set within 200 ms: absent"), std::string::npos) << s.error_message();
}

TEST_F(KvStoreTest, AddIsAtomicAcrossClients) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        grpc::ClientContext ctx;
        deadline(ctx);
        pdsd::v1::AddRequest r;
        r.set_protocol_version(pdsd::v1::PROTOCOL_VERSION);
        r.set_key("counter");
        r.set_delta(1);
        pdsd::v1::AddResponse out;
        EXPECT_TRUE(stub_->Add(&ctx, r, &out).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  pdsd::v1::GetResponse out;
  ASSERT_TRUE(get({"counter"}, 100, out).ok());
  EXPECT_EQ(out.values(0), "200");
}

TEST_F(KvStoreTest, OtherProtocolVersionIsRefused) {
  grpc::Status s = set("k", "v", 99);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("peer speaks 99, this coordinator speaks 1"), std::string::npos) << s.error_message();
}

}  // namespace
