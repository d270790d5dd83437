// Gloo collectives across real processes on loopback: every op's result checked exactly for 2 and 4
// ranks, timeouts that throw (naming rank, op and size) instead of hanging, a dead peer, rendezvous
// that gives up, argument checks, and no second copy of gloo in the process.
//
// Each case forks its ranks from this test process (tests/support/forked_ranks.h).
#include <gtest/gtest.h>
#include <link.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "common/job_config.h"
#include "worker/dist/gloo_collectives.h"
#include "tests/support/forked_ranks.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using pdsd::dist::Collectives;
using pdsd::dist::GlooCollectivesOptions;
using pdsd::dist::ReduceOp;

namespace {

using namespace pdsd::testing;

std::unique_ptr<Collectives> connect(int rank, int world_size, const ReservedPort& port,
                                     GlooCollectivesOptions options = {}) {
  if (rank == 0) options.master_listen_fd = port.fd;
  if (!options.store_timeout) options.store_timeout = 30s;
  return pdsd::dist::make_gloo_collectives(loopback_env(rank, world_size, port.port), options);
}

// ---- checks inside a rank (they throw; the parent reports) ---------------------------------------

// "float32 [3, 5]: 0 1 2 3 4 5 6 7 ..." — the first values on one line.
std::string preview(const at::Tensor& t) {
  std::ostringstream out;
  out << pdsd::dist::dtype_name(t) << " " << t.sizes() << ":";
  auto head = t.flatten().slice(0, 0, 8).to(at::kDouble).contiguous();
  for (int64_t i = 0; i < head.numel(); ++i) out << " " << head.data_ptr<double>()[i];
  if (t.numel() > head.numel()) out << " ...";
  return out.str();
}

void check_equal(const at::Tensor& actual, const at::Tensor& expected, const std::string& what) {
  if (actual.scalar_type() == expected.scalar_type() && actual.sizes() == expected.sizes() &&
      at::equal(actual, expected)) {
    return;
  }
  throw std::runtime_error(what + ": result differs\n  actual   " + preview(actual) + "\n  expected " +
                           preview(expected));
}

void check(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Runs `op`, which must throw pdsd::Error; returns its message and how long it took.
std::pair<std::string, double> expect_error(const std::string& what, const std::function<void()>& op) {
  auto t0 = std::chrono::steady_clock::now();
  try {
    op();
  } catch (const pdsd::Error& e) {
    return {e.what(), seconds_since(t0)};
  }
  throw std::runtime_error(what + ": returned normally, expected a pdsd::Error");
}

void check_contains(const std::string& text, const std::string& part) {
  check(text.find(part) != std::string::npos, "message lacks '" + part + "': " + text);
}

// ---- results of every op ------------------------------------------------------------------------

void all_ops_exact(int rank, int world, const ReservedPort& port, const fs::path& barrier_dir) {
  GlooCollectivesOptions options;
  options.timeout = 20s;
  auto c = connect(rank, world, port, options);
  check(c->rank() == rank && c->world_size() == world, "rank()/world_size()");
  const int64_t ranks_sum = world * (world + 1) / 2;  // sum over r of (r + 1)

  // all_reduce, sum: float32 with integer values (exact), rank-dependent.
  auto base = at::arange(1037, at::kFloat);
  auto t = base * static_cast<float>(rank + 1);
  c->all_reduce(t);
  check_equal(t, base * static_cast<float>(ranks_sum), "all_reduce sum float32");

  // int64 values beyond float precision, in a 2-D tensor: the sum must be exact to the last bit.
  auto ibase = at::arange(15, at::kLong).reshape({3, 5});
  auto big = ibase + (static_cast<int64_t>(rank + 1) << 40);
  c->all_reduce(big);
  check_equal(big, ibase * world + (ranks_sum << 40), "all_reduce sum int64");

  // max and min.
  auto m = at::arange(10, at::kFloat) + 100.0f * rank;
  c->all_reduce(m, ReduceOp::max);
  check_equal(m, at::arange(10, at::kFloat) + 100.0f * (world - 1), "all_reduce max");
  auto n = at::arange(10, at::kFloat) - 100.0f * rank;
  c->all_reduce(n, ReduceOp::min);
  check_equal(n, at::arange(10, at::kFloat) - 100.0f * (world - 1), "all_reduce min");

  // bfloat16 (what mixed-precision gradients are): small integers are exact.
  auto h = at::full({33}, static_cast<double>(rank + 1), at::kBFloat16);
  c->all_reduce(h);
  check_equal(h, at::full({33}, static_cast<double>(ranks_sum), at::kBFloat16), "all_reduce sum bfloat16");

  // broadcast from the last rank (non-zero root): the others' contents are overwritten.
  const int root = world - 1;
  auto pattern = at::arange(301, at::kDouble) * 3.0 + 0.25;
  auto b = rank == root ? pattern.clone() : at::full({301}, -1.0, at::kDouble);
  c->broadcast(b, root);
  check_equal(b, pattern, "broadcast from root " + std::to_string(root));

  // all_gather: 13 elements per rank (no power of two), each rank's values distinct.
  const int64_t shard = 13;
  auto mine = at::arange(shard, at::kFloat) + 1000.0f * rank;
  auto gathered = at::zeros({world * shard}, at::kFloat);
  c->all_gather(gathered, mine);
  std::vector<at::Tensor> parts;
  for (int r = 0; r < world; ++r) parts.push_back(at::arange(shard, at::kFloat) + 1000.0f * r);
  check_equal(gathered, at::cat(parts), "all_gather");

  // reduce_scatter: element k of every rank's input is (rank + 1)·(k + 1); rank r keeps the sums of
  // its own 13 elements.
  auto k = at::arange(world * shard, at::kFloat) + 1.0f;
  auto input = k * static_cast<float>(rank + 1);
  auto out = at::full({shard}, -7.0f, at::kFloat);
  c->reduce_scatter(out, input);
  check_equal(out, k.slice(0, rank * shard, (rank + 1) * shard) * static_cast<float>(ranks_sum), "reduce_scatter sum");

  // barrier: rank 0 arrives late; nobody may leave before its marker exists.
  if (rank == 0) std::this_thread::sleep_for(500ms);
  std::ofstream(barrier_dir / ("entered" + std::to_string(rank))).put('x');
  c->barrier();
  for (int r = 0; r < world; ++r) {
    check(fs::exists(barrier_dir / ("entered" + std::to_string(r))),
          "left the barrier before rank " + std::to_string(r) + " entered it");
  }
  check(c->failure().empty(), "failure() set after successful ops: " + c->failure());
}

class GlooCollectivesAcrossRanks : public ::testing::TestWithParam<int> {};

TEST_P(GlooCollectivesAcrossRanks, EveryOpGivesTheExactResult) {
  const int world = GetParam();
  ReservedPort port;
  fs::path barrier_dir = fs::temp_directory_path() / ("pdsd-test-gloo-barrier-" + std::to_string(::getpid()));
  fs::remove_all(barrier_dir);
  fs::create_directories(barrier_dir);
  auto results = run_ranks(world, 90s, [&](int rank) { all_ops_exact(rank, world, port, barrier_dir); });
  fs::remove_all(barrier_dir);
  expect_all_ok(results);
}

INSTANTIATE_TEST_SUITE_P(Worlds, GlooCollectivesAcrossRanks, ::testing::Values(2, 4),
                         [](const auto& info) { return std::to_string(info.param) + "Ranks"; });

// ---- timeouts -----------------------------------------------------------------------------------

// Rank 0 connects and then issues nothing; rank 1 runs `op`, which must throw after about `timeout`
// with a message naming rank 1, the op and its size. Rank 0 stays connected until rank 1 is done
// (a pipe), so that rank 1 sees silence, not a closed connection.
void one_rank_skips(GlooCollectivesOptions options, std::chrono::milliseconds timeout, const std::string& expected,
                    const std::function<void(Collectives&)>& op) {
  ReservedPort port;
  int done[2];
  ASSERT_EQ(::pipe(done), 0);
  auto results = run_ranks(2, 60s, [&](int rank) {
    auto c = connect(rank, 2, port, options);
    if (rank == 0) {
      ::close(done[1]);
      pollfd p{done[0], POLLIN, 0};
      check(::poll(&p, 1, 30000) == 1, "rank 1 did not finish within 30 s");
      return;
    }
    // Rank 0 may go once rank 1 is done, whether its checks passed or not (the process ends).
    struct SignalWhenDone {
      int fd;
      ~SignalWhenDone() { (void)!::write(fd, "x", 1); }
    } signal_rank0{done[1]};
    auto [message, seconds] = expect_error(expected, [&] { op(*c); });
    std::cout << "rank 1 got after " << seconds << " s: " << message << std::endl;
    check_contains(message, expected);
    double limit = std::chrono::duration<double>(timeout).count();
    check(seconds >= limit * 0.95, "threw after " + std::to_string(seconds) + " s, before the timeout");
    // Gloo's own per-op timeout ends the op, not just our wait's backstop (timeout + 2 s): Gloo's
    // worker thread is then free again and destroying the group cannot block.
    check(seconds < limit + 1.5, "threw only after " + std::to_string(seconds) + " s");
    // The group is out of step now: the next call refuses at once and names the first failure.
    auto [again, again_seconds] = expect_error("barrier after a timeout", [&] { c->barrier(); });
    check_contains(again, "rank 1: barrier not started: an earlier collective failed");
    check_contains(again, expected);
    check(again_seconds < 0.5, "the call after a failure waited " + std::to_string(again_seconds) + " s");
  });
  ::close(done[0]);
  ::close(done[1]);
  expect_all_ok(results);
}

TEST(GlooCollectivesTimeout, PerCallTimeoutNamesRankOpAndSize) {
  GlooCollectivesOptions options;
  options.timeout = 60s;  // overridden by the call's 2 s
  one_rank_skips(options, 2s,
                 "rank 1: all_reduce of 121408 float32 elements (485632 bytes) did not complete within 2 s "
                 "(a peer may have died or issued another collective)",
                 [](Collectives& c) { c.all_reduce(at::ones({121408}, at::kFloat), ReduceOp::sum, 2000ms); });
}

// The job's ddp_timeout is every op's default.
GlooCollectivesOptions from_job_with_timeout(int64_t seconds) {
  pdsd::JobConfig job;
  job.ddp_timeout = seconds;
  return GlooCollectivesOptions::from_job(job);
}

TEST(GlooCollectivesTimeout, JobTimeoutBoundsBroadcast) {
  one_rank_skips(from_job_with_timeout(2), 2s,
                 "rank 1: broadcast of 1000 float64 elements (8000 bytes) did not complete within 2 s",
                 [](Collectives& c) { c.broadcast(at::zeros({1000}, at::kDouble), 0); });
}

TEST(GlooCollectivesTimeout, JobTimeoutBoundsAllGather) {
  one_rank_skips(from_job_with_timeout(2), 2s,
                 "rank 1: all_gather of 26 float32 elements (104 bytes) did not complete within 2 s",
                 [](Collectives& c) { c.all_gather(at::zeros({26}), at::zeros({13})); });
}

TEST(GlooCollectivesTimeout, JobTimeoutBoundsReduceScatter) {
  one_rank_skips(from_job_with_timeout(2), 2s,
                 "rank 1: reduce_scatter of 26 bfloat16 elements (52 bytes) did not complete within 2 s",
                 [](Collectives& c) {
                   c.reduce_scatter(at::zeros({13}, at::kBFloat16), at::zeros({26}, at::kBFloat16));
                 });
}

TEST(GlooCollectivesTimeout, JobTimeoutBoundsBarrier) {
  one_rank_skips(from_job_with_timeout(2), 2s, "rank 1: barrier did not complete within 2 s",
                 [](Collectives& c) { c.barrier(); });
}

TEST(GlooCollectivesFailure, DeadPeerFailsTheOpInsteadOfHanging) {
  ReservedPort port;
  int left_barrier[2];
  ASSERT_EQ(::pipe(left_barrier), 0);
  auto results = run_ranks(2, 60s, [&](int rank) {
    GlooCollectivesOptions options;
    options.timeout = 20s;
    auto c = connect(rank, 2, port, options);
    c->barrier();  // both fully connected (and past the store) before rank 0 goes, even under load
    // Leaving the barrier first does not mean the peer has left it too: rank 1 says when it has,
    // and only then does rank 0 die, connected, without a word.
    if (rank == 1) check(::write(left_barrier[1], "x", 1) == 1, "pipe write");
    char byte = 0;
    if (rank == 0) (void)!::read(left_barrier[0], &byte, 1), ::_exit(0);
    auto [message, seconds] = expect_error("all_reduce with a dead peer", [&] { c->all_reduce(at::ones({1000})); });
    std::cout << "rank 1 got after " << seconds << " s: " << message << std::endl;
    check_contains(message, "rank 1: all_reduce of 1000 float32 elements (4000 bytes)");
    check(seconds < 20.0 * 1.05, "took " + std::to_string(seconds) + " s");
  });
  expect_all_ok(results);
}

// ---- rendezvous ---------------------------------------------------------------------------------

TEST(GlooCollectivesRendezvous, GivesUpAfterTheStoreTimeout) {
  ReservedPort port;
  int nobody = unused_port();
  auto results = run_ranks(2, 60s, [&](int which) {
    GlooCollectivesOptions options;
    options.store_timeout = 2s;
    auto t0 = std::chrono::steady_clock::now();
    if (which == 0) {
      // Rank 0 of 2 hosts the store, but rank 1 never comes.
      options.master_listen_fd = port.fd;
      auto [message, seconds] = expect_error("rank 0 alone", [&] {
        pdsd::dist::make_gloo_collectives(loopback_env(0, 2, port.port), options);
      });
      std::cout << message << std::endl;
      check_contains(message, "rank 0: hosting the rendezvous store at 127.0.0.1:" + std::to_string(port.port));
      check_contains(message, "for 2 ranks failed within 2 s");
    } else {
      // Rank 1 of 2 looks for a store that nobody hosts.
      auto [message, seconds] = expect_error("rank 1 alone", [&] {
        pdsd::dist::make_gloo_collectives(loopback_env(1, 2, nobody), options);
      });
      std::cout << message << std::endl;
      check_contains(message, "rank 1: reaching the rendezvous store at 127.0.0.1:" + std::to_string(nobody));
    }
    check(seconds_since(t0) < 10.0, "gave up only after " + std::to_string(seconds_since(t0)) + " s");
  });
  expect_all_ok(results);
}

TEST(GlooCollectivesRendezvous, ReadsTorchrunEnvironment) {
  int port = unused_port();
  auto results = run_ranks(2, 60s, [&](int rank) {
    ::setenv("RANK", std::to_string(rank).c_str(), 1);
    ::setenv("WORLD_SIZE", "2", 1);
    ::setenv("MASTER_ADDR", "127.0.0.1", 1);
    ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
    GlooCollectivesOptions options;
    options.timeout = 20s;
    auto c = pdsd::dist::make_gloo_collectives(pdsd::read_worker_env(), options);
    check(c->rank() == rank && c->world_size() == 2, "rank/world from the environment");
    auto t = at::full({4}, static_cast<double>(rank + 1), at::kDouble);
    c->all_reduce(t);
    check_equal(t, at::full({4}, 3.0, at::kDouble), "all_reduce");
  });
  expect_all_ok(results);
}

// ---- argument checks ----------------------------------------------------------------------------

TEST(GlooCollectivesArguments, BadArgumentsThrowBeforeAnyTrafficAndKeepTheGroupUsable) {
  ReservedPort port;
  auto results = run_ranks(1, 60s, [&](int rank) {
    GlooCollectivesOptions options;
    options.timeout = 10s;
    auto c = connect(rank, 1, port, options);
    auto [m1, s1] = expect_error("all_gather sizes", [&] { c->all_gather(at::zeros({5}), at::zeros({4})); });
    check_contains(m1, "rank 0: all_gather: output has 5 elements but 1 ranks x 4 input elements make 4");
    auto [m2, s2] = expect_error("reduce_scatter sizes", [&] { c->reduce_scatter(at::zeros({3}), at::zeros({4})); });
    check_contains(m2, "rank 0: reduce_scatter: input has 4 elements but 1 ranks x 3 output elements make 3");
    auto [m3, s3] = expect_error("broadcast root", [&] { c->broadcast(at::zeros({2}), 1); });
    check_contains(m3, "rank 0: broadcast: root 1 is not a rank of this group (0..0)");
    auto [m4, s4] = expect_error("strided", [&] { c->all_reduce(at::zeros({4, 4}).t()); });
    check_contains(m4, "rank 0: all_reduce: tensor is not contiguous");
    auto [m5, s5] = expect_error("dtype", [&] { c->all_gather(at::zeros({4}, at::kDouble), at::zeros({4})); });
    check_contains(m5, "rank 0: all_gather: output is float64 but input is float32");
    auto [m6, s6] = expect_error("timeout", [&] { c->barrier(0ms); });
    check_contains(m6, "rank 0: barrier: timeout must be positive, got 0 ms");
    // None of these reached the backend, so the group still works.
    check(c->failure().empty(), "failure() set by an argument error: " + c->failure());
    auto t = at::arange(6, at::kFloat);
    c->all_reduce(t);
    check_equal(t, at::arange(6, at::kFloat), "all_reduce of one rank");
  });
  expect_all_ok(results);
}

// ---- one gloo only ------------------------------------------------------------------------------

// Debian's libgloo.so (installed with the headers) must never be loaded next to libtorch_cpu.so's
// own gloo: the two would bind to each other's symbols and crash. This binary links pdsd_dist, so
// whatever it pulled in is loaded now.
TEST(GlooCollectivesLinkage, NoSecondGlooLibraryIsLoaded) {
  std::vector<std::string> loaded;
  ::dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* out) {
        static_cast<std::vector<std::string>*>(out)->push_back(info->dlpi_name ? info->dlpi_name : "");
        return 0;
      },
      &loaded);
  bool has_torch = false;
  for (const auto& name : loaded) {
    EXPECT_EQ(fs::path(name).filename().string().find("libgloo"), std::string::npos) << name << " is loaded";
    if (name.find("libtorch_cpu.so") != std::string::npos) has_torch = true;
  }
  EXPECT_TRUE(has_torch) << "libtorch_cpu.so is not loaded: the check above proves nothing";
}

}  // namespace
