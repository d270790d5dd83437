// The rendezvous at scale: N simulated agents (threads, each with its own gRPC connection, token on
// every call) join one coordinator on loopback and pass the first attempt's barrier, as N pdsd-launch
// agents do before their workers start. Prints, per N: the time from the first Join sent to the last
// barrier answer received, and the p50 / p99 latency of Join and of the barrier per agent.
// (A Join returns when the rendezvous closes, so its latency includes waiting for the last agent.)
//
//   build/bin/pdsd-bench-rendezvous [--agents 8,64,256] [--repeats 3]
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "common/log.h"
#include "launcher/control_server.h"
#include "launcher/coordinator_client.h"

namespace {

using Clock = std::chrono::steady_clock;

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5))];
}

struct Round {
  double total_s = 0;
  std::vector<double> join_ms, barrier_ms;
  int failures = 0;
};

Round rendezvous(int agents) {
  pdsd::ControlSecurity security{.token = pdsd::generate_job_token()};
  pdsd::ControlServer server({"127.0.0.1", 0}, security,
                             {.rdzv_id = "bench", .min_nodes = agents, .max_nodes = agents, .join_timeout_s = 60});
  std::vector<std::unique_ptr<pdsd::CoordinatorClient>> clients;
  for (int i = 0; i < agents; ++i) clients.push_back(std::make_unique<pdsd::CoordinatorClient>(server.endpoint().str(), security));
  Round round;
  round.join_ms.resize(agents);
  round.barrier_ms.resize(agents);
  std::atomic<int> ready{0}, failures{0};
  std::atomic<bool> go{false};
  std::vector<Clock::time_point> finished(agents);
  Clock::time_point start;
  std::vector<std::thread> threads;
  for (int i = 0; i < agents; ++i) {
    threads.emplace_back([&, i] {
      pdsd::v1::JoinRequest request;
      request.set_rdzv_id("bench");
      request.set_agent_id("agent-" + std::to_string(i));
      request.set_hostname("node" + std::to_string(i));
      request.set_nproc(8);
      request.set_node_rank(-1);
      ++ready;
      while (!go.load()) std::this_thread::yield();
      auto t0 = Clock::now();
      pdsd::v1::JoinResponse joined;
      if (!clients[i]->join(request, std::chrono::seconds(60), joined).ok()) ++failures;
      auto t1 = Clock::now();
      pdsd::v1::StartAttemptResponse started;
      if (!clients[i]->start_attempt(request.agent_id(), 0, std::chrono::seconds(60), started).ok() || !started.start()) ++failures;
      auto t2 = Clock::now();
      round.join_ms[i] = std::chrono::duration<double, std::milli>(t1 - t0).count();
      round.barrier_ms[i] = std::chrono::duration<double, std::milli>(t2 - t1).count();
      finished[i] = t2;
    });
  }
  while (ready.load() < agents) std::this_thread::yield();
  start = Clock::now();
  go = true;
  for (auto& t : threads) t.join();
  round.total_s = std::chrono::duration<double>(*std::max_element(finished.begin(), finished.end()) - start).count();
  round.failures = failures.load();
  return round;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"pdsd-bench-rendezvous: N simulated agents join one coordinator on loopback"};
  std::vector<int> sizes{8, 64, 256};
  int repeats = 3;
  app.add_option("--agents", sizes, "agent counts")->delimiter(',');
  app.add_option("--repeats", repeats, "rounds per count; the table shows the median round by total time");
  CLI11_PARSE(app, argc, argv);
  pdsd::log::init({.prefix = "bench", .level = pdsd::log::Level::warn});  // not one line per join
  std::printf("%8s %8s %16s %12s %12s %14s %14s %8s\n", "agents", "workers", "rendezvous (s)", "join p50 ms", "join p99 ms",
              "barrier p50 ms", "barrier p99 ms", "#failed");
  for (int n : sizes) {
    std::vector<Round> rounds;
    for (int r = 0; r < repeats; ++r) rounds.push_back(rendezvous(n));
    std::sort(rounds.begin(), rounds.end(), [](const Round& a, const Round& b) { return a.total_s < b.total_s; });
    const Round& m = rounds[rounds.size() / 2];
    std::printf("%8d %8d %16.3f %12.1f %12.1f %14.1f %14.1f %8d\n", n, n * 8, m.total_s, percentile(m.join_ms, 0.5),
                percentile(m.join_ms, 0.99), percentile(m.barrier_ms, 0.5), percentile(m.barrier_ms, 0.99), m.failures);
  }
  return 0;
}
