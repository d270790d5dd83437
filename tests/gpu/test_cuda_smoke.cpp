// On a GPU machine: libtorch runs a matmul on the GPU that agrees with the CPU, and NCCL's library
// answers with the version it was built as. Skips where no GPU is present.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <gtest/gtest.h>
#include <nccl.h>

namespace {

bool have_gpu() { return at::hasCUDA() && at::cuda::device_count() > 0; }

TEST(CudaSmoke, MatmulOnGpuMatchesCpu) {
  if (!have_gpu()) GTEST_SKIP() << "no GPU";
  at::manual_seed(0);
  at::Tensor a = at::randn({256, 512});
  at::Tensor b = at::randn({512, 128});
  at::Tensor gpu = at::matmul(a.cuda(), b.cuda()).cpu();
  EXPECT_TRUE(at::allclose(gpu, at::matmul(a, b), 1e-3, 1e-3));
}

TEST(CudaSmoke, NcclLibraryLoads) {
  if (!have_gpu()) GTEST_SKIP() << "no GPU";
  int version = 0;
  ASSERT_EQ(ncclGetVersion(&version), ncclSuccess);
  EXPECT_GE(version, 22800) << "NCCL " << version;
  std::printf("NCCL version code %d, %d GPU(s), %s\n", version, static_cast<int>(at::cuda::device_count()),
              at::cuda::getCurrentDeviceProperties()->name);
}

}  // namespace
