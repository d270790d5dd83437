// Bus bandwidth of the engine's all-gather and reduce-scatter (worker/dist/nccl_collectives.h) against
// plain NCCL calls of the same sizes on the same GPUs, nccl-tests style. Run one process per GPU:
//   pdsd-launch --nproc 2 -- build-gpu/bin/pdsd-bench-collectives [--min-mib 1] [--max-mib 1024] [--iters 20]
// Rank 0 prints the table. busbw = bytes of the whole buffer / time × (N−1)/N, as nccl-tests defines
// it for both operations; bf16 buffers (what ZeRO-3 gathers).
#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstdio>
#include <functional>

#include "common/main_guard.h"
#include "common/worker_env.h"
#include "worker/cuda_check.h"
#include "worker/dist/nccl_collectives.h"
#include "worker/dist/rendezvous_store.h"

namespace {

// Mean seconds per call of `op` on `stream`, after warm-up, timed with CUDA events.
double time_op(cudaStream_t stream, int iters, const std::function<void()>& op) {
  for (int i = 0; i < 5; ++i) op();
  cudaEvent_t start, stop;
  PDSD_CUDA_CHECK(cudaEventCreate(&start));
  PDSD_CUDA_CHECK(cudaEventCreate(&stop));
  PDSD_CUDA_CHECK(cudaEventRecord(start, stream));
  for (int i = 0; i < iters; ++i) op();
  PDSD_CUDA_CHECK(cudaEventRecord(stop, stream));
  PDSD_CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  PDSD_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms / 1000.0 / iters;
}

int run(int argc, char** argv) {
  CLI::App app{"pdsd-bench-collectives: engine vs plain NCCL bus bandwidth"};
  int64_t min_mib = 1, max_mib = 1024;
  int iters = 20;
  app.add_option("--min-mib", min_mib);
  app.add_option("--max-mib", max_mib);
  app.add_option("--iters", iters);
  CLI11_PARSE(app, argc, argv);

  pdsd::WorkerEnv env = pdsd::read_worker_env();
  const int n = env.world_size;
  c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(env.local_rank));
  auto store = pdsd::dist::connect_rendezvous_store(env, std::chrono::seconds(120));

  // Plain NCCL: its own communicator and stream, no engine in between.
  ncclUniqueId id;
  if (env.rank == 0) {
    PDSD_NCCL_CHECK(ncclGetUniqueId(&id));
    store->set("bench/plain_id", std::vector<uint8_t>(reinterpret_cast<uint8_t*>(&id), reinterpret_cast<uint8_t*>(&id) + sizeof id));
  } else {
    store->wait({"bench/plain_id"}, std::chrono::seconds(120));
    auto bytes = store->get("bench/plain_id");
    std::memcpy(&id, bytes.data(), sizeof id);
  }
  ncclComm_t plain;
  PDSD_NCCL_CHECK(ncclCommInitRank(&plain, n, id, env.rank));
  cudaStream_t plain_stream;
  PDSD_CUDA_CHECK(cudaStreamCreateWithFlags(&plain_stream, cudaStreamNonBlocking));

  pdsd::dist::NcclCollectivesOptions options;
  options.device = env.local_rank;
  options.timeout = std::chrono::seconds(300);
  options.store = store;
  auto engine = pdsd::dist::make_nccl_collectives(env, options);
  cudaStream_t engine_stream = c10::cuda::getCurrentCUDAStream().stream();

  if (env.rank == 0) {
    std::printf("%d ranks, bf16; busbw in GB/s (nccl-tests definition)\n", n);
    std::printf("%10s %16s %12s %12s %7s\n", "size", "op", "plain NCCL", "engine", "ratio");
  }
  auto opts = at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA, env.local_rank);
  for (int64_t mib = min_mib; mib <= max_mib; mib *= 4) {
    const int64_t bytes = mib << 20, elems = bytes / 2 / n * n, shard = elems / n;
    at::Tensor full = at::randn({elems}, opts), part = at::randn({shard}, opts);
    for (const char* op : {"all_gather", "reduce_scatter"}) {
      const bool gather = op[0] == 'a';
      double t_plain = time_op(plain_stream, iters, [&] {
        if (gather) {
          PDSD_NCCL_CHECK(ncclAllGather(part.data_ptr(), full.data_ptr(), shard, ncclBfloat16, plain, plain_stream));
        } else {
          PDSD_NCCL_CHECK(ncclReduceScatter(full.data_ptr(), part.data_ptr(), shard, ncclBfloat16, ncclSum, plain, plain_stream));
        }
      });
      double t_engine = time_op(engine_stream, iters, [&] {
        if (gather) engine->all_gather(full, part);
        else engine->reduce_scatter(part, full);
      });
      const double factor = static_cast<double>(elems) * 2 * (n - 1) / n / 1e9;
      if (env.rank == 0) {
        std::printf("%7lld MiB %16s %12.1f %12.1f %6.1f%%\n", static_cast<long long>(mib), op, factor / t_plain,
                    factor / t_engine, 100.0 * t_plain / t_engine);
      }
    }
  }
  engine->barrier();
  ncclCommDestroy(plain);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return pdsd::guarded_main(run, argc, argv); }
