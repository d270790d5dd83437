// Ranks as forked child processes of a test, for collectives tests (Gloo on CPU, NCCL on GPUs).
// Each case forks its ranks from the test process (libtorch is loaded but has started no threads and
// no CUDA context yet, so fork is safe). Every rank's output goes to its own file, shown when the
// rank fails; the parent kills every rank still running at the case's deadline, so a hang fails the
// test instead of the suite.
#pragma once

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "common/worker_env.h"

namespace pdsd::testing {

namespace fs = std::filesystem;
using namespace std::chrono_literals;


struct RankResult {
  int rank = 0;
  int status = 0;
  bool killed_at_deadline = false;
  std::string output;
  bool ok() const { return !killed_at_deadline && WIFEXITED(status) && WEXITSTATUS(status) == 0; }
};

inline std::string describe(const RankResult& r) {
  std::string how = r.killed_at_deadline ? "still running at the deadline (killed)"
                    : WIFEXITED(r.status)  ? "exited with " + std::to_string(WEXITSTATUS(r.status))
                                           : "killed by signal " + std::to_string(WTERMSIG(r.status));
  return "rank " + std::to_string(r.rank) + " " + how + "; its output:\n" + r.output;
}

// Runs body(rank) in `n` child processes and waits for all of them, at most `deadline`; a rank that
// fails (exception or non-zero exit) gives the others 5 s more before they are killed too.
inline std::vector<RankResult> run_ranks(int n, std::chrono::seconds deadline, const std::function<void(int)>& body) {
  static int case_counter = 0;
  fs::path dir = fs::temp_directory_path() /
                 ("pdsd-test-ranks-" + std::to_string(::getpid()) + "-" + std::to_string(case_counter++));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::fflush(nullptr);
  std::vector<pid_t> pids;
  for (int rank = 0; rank < n; ++rank) {
    std::string log = (dir / ("rank" + std::to_string(rank) + ".log")).string();
    pid_t pid = ::fork();
    if (pid == 0) {
      std::FILE* out = std::freopen(log.c_str(), "w", stdout);
      if (out == nullptr || ::dup2(::fileno(stdout), 2) < 0) ::_exit(90);
      int code = 0;
      try {
        body(rank);
      } catch (const std::exception& e) {
        std::cout << "FAILED: " << e.what() << std::endl;
        code = 1;
      }
      std::cout.flush();
      std::fflush(nullptr);
      ::_exit(code);  // no atexit handlers or gtest reporting in the child
    }
    pids.push_back(pid);
  }

  std::vector<RankResult> results(n);
  std::vector<bool> done(n, false);
  auto end = std::chrono::steady_clock::now() + deadline;
  int remaining = n;
  while (remaining > 0 && std::chrono::steady_clock::now() < end) {
    for (int rank = 0; rank < n; ++rank) {
      if (done[rank]) continue;
      int status = 0;
      if (::waitpid(pids[rank], &status, WNOHANG) == pids[rank]) {
        done[rank] = true;
        --remaining;
        results[rank].status = status;
        if (!results[rank].ok()) end = std::min(end, std::chrono::steady_clock::now() + 5s);
      }
    }
    std::this_thread::sleep_for(10ms);
  }
  for (int rank = 0; rank < n; ++rank) {
    results[rank].rank = rank;
    if (!done[rank]) {
      ::kill(pids[rank], SIGKILL);
      ::waitpid(pids[rank], &results[rank].status, 0);
      results[rank].killed_at_deadline = true;
    }
    std::ifstream in(dir / ("rank" + std::to_string(rank) + ".log"));
    std::stringstream text;
    text << in.rdbuf();
    results[rank].output = text.str();
  }
  fs::remove_all(dir);
  return results;
}

inline void expect_all_ok(const std::vector<RankResult>& results) {
  for (const auto& r : results) EXPECT_TRUE(r.ok()) << describe(r);
}

// A listening socket on a free loopback port: rank 0's store takes it over (master_listen_fd), so the
// port stays reserved from the moment it is chosen and parallel tests cannot take it.
struct ReservedPort {
  int fd = -1;
  int port = 0;
  ReservedPort() {
    fd = PDSD_SYSCALL(::socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    PDSD_SYSCALL(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr));
    PDSD_SYSCALL(::listen(fd, 128));
    socklen_t len = sizeof addr;
    PDSD_SYSCALL(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len));
    port = ntohs(addr.sin_port);
  }
  ~ReservedPort() { ::close(fd); }
};

// A port nothing listens on (bound, then released): for the environment test, which must go
// through MASTER_PORT, and for a store that is never there.
inline int unused_port() {
  ReservedPort p;
  return p.port;
}

inline pdsd::WorkerEnv loopback_env(int rank, int world_size, int port) {
  pdsd::WorkerEnv env;
  env.rank = env.local_rank = rank;
  env.world_size = env.local_world_size = world_size;
  env.master_addr = "127.0.0.1";
  env.master_port = port;
  return env;
}

}  // namespace pdsd::testing
