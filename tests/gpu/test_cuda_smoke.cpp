// On a GPU machine: libtorch runs a matmul on the GPU that agrees with the CPU, and NCCL's library
// answers with the version it was built as. Skips cleanly in a CPU build or where no GPU is present.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#ifdef PDSD_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>

#include "worker/cuda_check.h"
#endif

namespace {

#ifdef PDSD_HAVE_CUDA
bool have_gpu() { return at::hasCUDA() && at::cuda::device_count() > 0; }
#define PDSD_REQUIRE_GPU() \
  if (!have_gpu()) GTEST_SKIP() << "no GPU on this machine"
#else
#define PDSD_REQUIRE_GPU() GTEST_SKIP() << "built without CUDA (configure with -DPDSD_CUDA=ON)"
#endif

TEST(CudaSmoke, MatmulOnGpuMatchesCpu) {
  PDSD_REQUIRE_GPU();
#ifdef PDSD_HAVE_CUDA
  at::manual_seed(0);
  at::Tensor a = at::randn({256, 512});
  at::Tensor b = at::randn({512, 128});
  at::Tensor gpu = at::matmul(a.cuda(), b.cuda()).cpu();
  EXPECT_TRUE(at::allclose(gpu, at::matmul(a, b), 1e-3, 1e-3));
#endif
}

TEST(CudaSmoke, NcclLibraryLoads) {
  PDSD_REQUIRE_GPU();
#ifdef PDSD_HAVE_CUDA
  int version = 0;
  PDSD_NCCL_CHECK(ncclGetVersion(&version));
  EXPECT_GE(version, 22800) << "NCCL " << version;
  std::printf("NCCL version code %d, %d GPU(s), %s\n", version, static_cast<int>(at::cuda::device_count()),
              at::cuda::getCurrentDeviceProperties()->name);
#endif
}

TEST(CudaSmoke, FailedCudaCallNamesTheCallAndLocation) {
  PDSD_REQUIRE_GPU();
#ifdef PDSD_HAVE_CUDA
  try {
    PDSD_CUDA_CHECK(cudaSetDevice(1 << 20));
    FAIL() << "cudaSetDevice on a device that does not exist succeeded";
  } catch (const pdsd::Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("CUDA error cudaErrorInvalidDevice"), std::string::npos) << what;
    EXPECT_NE(what.find("cudaSetDevice(1 << 20)"), std::string::npos) << what;
    EXPECT_NE(what.find("test_cuda_smoke.cpp:"), std::string::npos) << what;
  }
#endif
}

}  // namespace
