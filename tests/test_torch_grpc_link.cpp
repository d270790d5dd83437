// One binary that links libtorch and gRPC/protobuf together, as pdsd-worker will: libtorch_cpu.so
// carries its own protobuf (for ONNX) and exports onnx_torch message classes. This checks that our
// protobuf messages register and serialize, that a real gRPC call works, and that libtorch computes
// in the same process — the check that must also pass on the GPU machine (scripts/gpu_suite.sh).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <google/protobuf/descriptor.h>

#include "launcher/kv_store_service.h"
#include "tests/support/torch_fingerprint.h"

namespace {

TEST(TorchGrpcLink, ProtobufMessagesRegisterAlongsideLibtorch) {
  const auto* descriptor =
      google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName("pdsd.v1.SetRequest");
  ASSERT_NE(descriptor, nullptr);
  EXPECT_EQ(descriptor->field_count(), 3);
  pdsd::v1::SetRequest request;
  request.set_key("nccl_unique_id");
  request.set_value(std::string("\x00\x01\x02", 3));
  pdsd::v1::SetRequest parsed;
  ASSERT_TRUE(parsed.ParseFromString(request.SerializeAsString()));
  EXPECT_EQ(parsed.value().size(), 3u);
}

TEST(TorchGrpcLink, GrpcCallCarriesATorchResult) {
  double fingerprint = pdsd::testing::torch_weights_fingerprint(std::string(PDSD_SOURCE_DIR) + "/examples/tiny-qwen2");
  EXPECT_GT(fingerprint, 0.0);

  pdsd::KeyValueStoreService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto stub = pdsd::v1::KeyValueStore::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));

  grpc::ClientContext set_ctx;
  set_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  pdsd::v1::SetRequest set;
  set.set_protocol_version(pdsd::v1::PROTOCOL_VERSION);
  set.set_key("fingerprint");
  set.set_value(std::to_string(fingerprint));
  pdsd::v1::SetResponse set_response;
  ASSERT_TRUE(stub->Set(&set_ctx, set, &set_response).ok());

  grpc::ClientContext get_ctx;
  get_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  pdsd::v1::GetRequest get;
  get.set_protocol_version(pdsd::v1::PROTOCOL_VERSION);
  get.add_keys("fingerprint");
  get.set_timeout_ms(1000);
  pdsd::v1::GetResponse got;
  ASSERT_TRUE(stub->Get(&get_ctx, get, &got).ok());
  ASSERT_EQ(got.values_size(), 1);
  EXPECT_EQ(std::stod(got.values(0)), std::stod(std::to_string(fingerprint)));
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
}

}  // namespace
