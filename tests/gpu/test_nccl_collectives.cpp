// NCCL collectives on real GPUs, one forked process per GPU: every op's result checked exactly
// against a CPU computation, results ordered on the caller's stream (no host sync needed), CPU
// tensors staged through the GPU, and a collective that a peer never joins ends the waiting rank
// with an error naming rank, op and size instead of hanging. Needs 2 GPUs; skips otherwise.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdlib>

#include "worker/dist/nccl_collectives.h"
#include "tests/support/forked_ranks.h"

namespace {

using namespace pdsd::testing;
using pdsd::dist::ReduceOp;

// Counted without touching CUDA in this (parent) process: a child forked after the parent
// initialised CUDA cannot use it. The driver lists each GPU under /proc; CUDA_VISIBLE_DEVICES narrows.
int gpu_count() {
  int n = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc/driver/nvidia/gpus", ec)) n += entry.is_directory() ? 1 : 0;
  if (const char* visible = std::getenv("CUDA_VISIBLE_DEVICES"); visible != nullptr) {
    const std::string v = visible;
    n = std::min<int>(n, v.empty() ? 0 : static_cast<int>(std::count(v.begin(), v.end(), ',')) + 1);
  }
  return n;
}

#define PDSD_REQUIRE_GPUS(n)                                                              \
  if (!pdsd::dist::nccl_built()) GTEST_SKIP() << "built without CUDA/NCCL";               \
  if (gpu_count() < (n)) GTEST_SKIP() << "needs " << (n) << " GPUs, found " << gpu_count()

std::unique_ptr<pdsd::dist::Collectives> connect(int rank, int world, const ReservedPort& port,
                                                 std::chrono::milliseconds timeout) {
  pdsd::WorkerEnv env = loopback_env(rank, world, port.port);
  pdsd::dist::NcclCollectivesOptions options;
  options.device = rank;
  options.timeout = timeout;
  options.store_timeout = std::chrono::seconds(60);
  return pdsd::dist::make_nccl_collectives(env, options);
}

void check(bool ok, const std::string& what) {
  if (!ok) throw pdsd::Error(what);
}

TEST(NcclCollectives, EveryOpGivesTheExactResultOnTwoGpus) {
  PDSD_REQUIRE_GPUS(2);
  ReservedPort port;
  ::close(port.fd);  // NCCL's store binds MASTER_PORT itself
  auto results = run_ranks(2, std::chrono::seconds(120), [&](int rank) {
    auto c = connect(rank, 2, port, std::chrono::seconds(60));
    auto gpu = at::TensorOptions().device(at::kCUDA, rank);
    // Integer-valued floats: sums are exact whatever NCCL's reduction order.
    auto data = [](int r, int64_t n) { return at::arange(n, at::kFloat).add(1000 * r); };
    const int64_t n = 1 << 20;
    at::Tensor t = data(rank, n).to(gpu);
    c->all_reduce(t);
    check(at::equal(t.cpu(), data(0, n) + data(1, n)), "all_reduce sum");
    at::Tensor m = data(rank, n).to(gpu);
    c->all_reduce(m, ReduceOp::max);
    check(at::equal(m.cpu(), data(1, n)), "all_reduce max");
    at::Tensor b = data(rank, n).to(at::kBFloat16).to(gpu);
    c->broadcast(b, 1);
    check(at::equal(b.cpu(), data(1, n).to(at::kBFloat16)), "broadcast bf16 from rank 1");
    at::Tensor out = at::empty({2 * n}, gpu);
    c->all_gather(out, data(rank, n).to(gpu));
    check(at::equal(out.cpu(), at::cat({data(0, n), data(1, n)})), "all_gather");
    at::Tensor shard = at::empty({n}, gpu);
    at::Tensor flat = at::cat({data(rank, n), data(rank, n)}).to(gpu);
    c->reduce_scatter(shard, flat);
    check(at::equal(shard.cpu(), data(0, n) + data(1, n)), "reduce_scatter");
    at::Tensor counts = at::tensor({static_cast<double>(rank + 1)}, at::kDouble);  // a CPU tensor
    c->all_reduce(counts);
    check(counts.item<double>() == 3.0, "all_reduce of a CPU tensor");
    c->barrier();
  });
  for (const auto& r : results) EXPECT_TRUE(r.ok()) << describe(r);
}

// ZeRO-3's copy-engine all-gathers (job key zero3_gather_engine copy): all-gathers between gather
// memory go to a second communicator with CTA policy zero and its own stream. They must give the
// exact result, sync and async, while a reduce-scatter on the first communicator is in flight beside
// them; and on these machines (NCCL 2.28, NVLink) NCCL must really have taken the copy-engine path:
// its log says "Init CE" when it sets that up, at the first such all-gather.
TEST(NcclCollectives, AllGathersInGatherMemoryAreExactBesideAReduceScatter) {
  PDSD_REQUIRE_GPUS(2);
  ReservedPort port;
  ::close(port.fd);
  auto results = run_ranks(2, std::chrono::seconds(120), [&](int rank) {
    ::setenv("NCCL_DEBUG", "INFO", 1);  // read at NCCL's first call, in this child
    ::setenv("NCCL_DEBUG_SUBSYS", "INIT", 1);
    auto c = connect(rank, 2, port, std::chrono::seconds(60));
    auto gpu = at::TensorOptions().device(at::kCUDA, rank);
    auto data = [](int r, int64_t n) { return at::arange(n, at::kFloat).add(1000 * r); };
    const int64_t n = 3 << 20;  // 6 MiB of bf16 per rank: a layer-sized gather
    at::Tensor shards = c->gather_memory(2 * n, gpu.dtype(at::kBFloat16));
    at::Tensor outs = c->gather_memory(4 * n, gpu.dtype(at::kBFloat16));
    std::string why_not;
    check(c->gathers_on_copy_engines(&why_not), "copy-engine all-gathers are not set up: " + why_not);
    shards.narrow(0, 0, n).copy_(data(rank, n).to(at::kBFloat16));
    shards.narrow(0, n, n).copy_(data(rank + 7, n).to(at::kBFloat16));
    at::Tensor flat = at::cat({data(rank, n), data(rank, n)}).to(gpu);
    at::Tensor reduced = at::empty({n}, gpu);
    auto rs = c->reduce_scatter_async(reduced, flat);
    auto ag = c->all_gather_async(outs.narrow(0, 0, 2 * n), shards.narrow(0, 0, n));
    c->all_gather(outs.narrow(0, 2 * n, 2 * n), shards.narrow(0, n, n));
    ag.wait();
    rs.wait();
    check(at::equal(outs.narrow(0, 0, 2 * n).cpu(), at::cat({data(0, n), data(1, n)}).to(at::kBFloat16)), "async all_gather");
    check(at::equal(outs.narrow(0, 2 * n, 2 * n).cpu(), at::cat({data(7, n), data(8, n)}).to(at::kBFloat16)), "all_gather");
    check(at::equal(reduced.cpu(), data(0, n) + data(1, n)), "reduce_scatter beside them");
    c->barrier();
  });
  for (const auto& r : results) {
    EXPECT_TRUE(r.ok()) << describe(r);
    EXPECT_NE(r.output.find("Init CE"), std::string::npos) << "NCCL did not set up copy-engine collectives\n" << describe(r);
  }
}

TEST(NcclCollectives, PeerThatNeverJoinsEndsTheRankWithAClearError) {
  PDSD_REQUIRE_GPUS(2);
  ReservedPort port;
  ::close(port.fd);
  auto results = run_ranks(2, std::chrono::seconds(120), [&](int rank) {
    auto c = connect(rank, 2, port, std::chrono::seconds(3));
    if (rank == 0) {
      at::Tensor t = at::ones({1000}, at::TensorOptions().device(at::kCUDA, 0));
      c->all_reduce(t);  // rank 1 never joins: the watchdog must end this process
      c->barrier();
      std::cout << "all_reduce returned without its peer" << std::endl;
      return;
    }
    std::this_thread::sleep_for(std::chrono::seconds(20));  // alive but silent
  });
  ASSERT_FALSE(results[0].killed_at_deadline) << describe(results[0]);
  EXPECT_TRUE(WIFEXITED(results[0].status) && WEXITSTATUS(results[0].status) == 1) << describe(results[0]);
  EXPECT_NE(results[0].output.find("rank 0: all_reduce of 1000 float32 elements (4000 bytes) did not complete within 3 s"),
            std::string::npos)
      << results[0].output;
}

}  // namespace
