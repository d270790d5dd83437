// pdsd-launch: the per-node agent, in torchrun's place.
//
//   pdsd-launch --standalone --nproc 2 configs/sft.yaml [key=value ...]
//   pdsd-launch --nproc 4 -- python train.py        # any program written for torchrun
//
// Today it runs one node: it validates the job config before any process starts, spawns the
// workers with torchrun's environment, prefixes and files their output, forwards signals, stops the
// whole group on the first failure and names its root cause, and restarts the group up to
// --max-restarts times. Multi-node rendezvous and the gRPC control plane are the next step.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

#include "common/job_config.h"
#include "common/log.h"
#include "common/main_guard.h"
#include "common/worker_env.h"
#include "launcher/launch_options.h"
#include "launcher/worker_group.h"

namespace {

// A port the kernel considers free right now, for --standalone (as torchrun does).
int free_port() {
  int fd = PDSD_SYSCALL(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw pdsd::Error("cannot find a free port on 127.0.0.1");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string worker_binary() {
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe");
  auto candidate = self.parent_path() / "pdsd-worker";
  if (!std::filesystem::exists(candidate)) {
    throw pdsd::Error(pdsd::str("pdsd-worker not found next to pdsd-launch (", candidate.string(), ")"));
  }
  return candidate.string();
}

void report_failure(const pdsd::WorkerExit& w, int attempt) {
  std::cerr << "\n==== pdsd-launch: worker failure (attempt " << attempt << ") ====\n"
            << "  root cause : rank " << w.rank << " (local rank " << w.local_rank << ", pid " << w.pid << ")\n"
            << "  host       : " << [] { char h[256] = {}; ::gethostname(h, sizeof h - 1); return std::string(h); }() << "\n"
            << "  status     : " << w.describe() << " after " << w.seconds << " s\n";
  if (!w.log_file.empty()) std::cerr << "  log        : " << w.log_file << "\n";
  std::cerr << "  last lines :\n";
  for (const auto& line : w.last_lines) std::cerr << "    " << line << "\n";
  std::cerr << "==========================================================\n";
}

int run(int argc, char** argv) {
  pdsd::LaunchOptions opt;
  if (!pdsd::parse_launch_options(argc, argv, opt)) return 0;
  pdsd::log::init({.prefix = "agent 0", .level = pdsd::log::level_from_env().value_or(pdsd::log::Level::info)});

  std::vector<std::string> command = opt.program;
  if (!opt.config_path.empty()) {
    // Validate before any worker starts: a bad key fails here, once, not in every rank.
    pdsd::JobConfig config = pdsd::load_job_config(opt.config_path, opt.overrides);
    pdsd::log::info("config ", opt.config_path, " valid: ", config.finetuning_type, " SFT of ",
                    config.model_name_or_path, " on ", config.dataset, ", zero_stage ", config.zero_stage);
    command = {worker_binary(), opt.config_path};
    command.insert(command.end(), opt.overrides.begin(), opt.overrides.end());
  }

  const int world = opt.max_nodes * opt.nproc_per_node;
  for (int attempt = 0;; ++attempt) {
    // A fresh port per attempt: the last attempt's rendezvous socket may still linger in TIME_WAIT.
    if (opt.standalone && !opt.master_port_given) opt.master_port = free_port();
    pdsd::WorkerSpec spec;
    spec.command = command;
    spec.monitor_interval_s = opt.monitor_interval_s;
    spec.stop_grace_s = opt.stop_grace_s;
    spec.console = opt.redirects == 0;
    spec.console_local_ranks = opt.local_ranks_filter;
    if (!opt.log_dir.empty()) spec.log_dir = (std::filesystem::path(opt.log_dir) / pdsd::str("attempt_", attempt)).string();
    for (int local = 0; local < opt.nproc_per_node; ++local) {
      pdsd::WorkerEnv env;
      env.local_rank = local;
      env.local_world_size = opt.nproc_per_node;
      env.group_rank = opt.node_rank;
      env.rank = opt.node_rank * opt.nproc_per_node + local;
      env.world_size = world;
      env.master_addr = opt.master_addr;
      env.master_port = opt.master_port;
      env.restart_count = attempt;
      auto vars = env.to_variables();
      vars["TORCHELASTIC_MAX_RESTARTS"] = std::to_string(opt.max_restarts);
      vars["TORCHELASTIC_RUN_ID"] = opt.rdzv_id;
      vars["PDSD_AGENT_PID"] = std::to_string(::getpid());
      // As torchrun does: without a limit every worker starts one compute thread per core and the
      // node is oversubscribed nproc times over. A value the user set is kept.
      if (std::getenv("OMP_NUM_THREADS") == nullptr) {
        vars["OMP_NUM_THREADS"] = std::to_string(std::max(1u, std::thread::hardware_concurrency() / opt.nproc_per_node));
      }
      spec.env_per_worker.push_back(vars);
      spec.global_ranks.push_back(env.rank);
    }
    pdsd::log::info("attempt ", attempt, ": starting ", opt.nproc_per_node, " workers (world size ", world,
                    ", master ", opt.master_addr, ":", opt.master_port, ")");
    auto t0 = std::chrono::steady_clock::now();
    pdsd::GroupResult result = pdsd::WorkerGroup(spec).wait();
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (result.ok()) {
      pdsd::log::info("all ", result.workers.size(), " workers finished successfully in ", seconds, " s");
      return 0;
    }
    if (result.stop_signal != 0) {
      pdsd::log::warn("stopped by signal ", result.stop_signal, " after ", seconds, " s");
      return 128 + result.stop_signal;
    }
    const auto& cause = result.workers[*result.first_failure];
    report_failure(cause, attempt);
    if (attempt >= opt.max_restarts) {
      pdsd::log::error("giving up after ", attempt + 1, " attempt(s) (--max-restarts ", opt.max_restarts, ")");
      return cause.signal != 0 ? 128 + cause.signal : (cause.exit_code != 0 ? cause.exit_code : 1);
    }
    pdsd::log::warn("restarting the worker group (restart ", attempt + 1, " of ", opt.max_restarts, ")");
  }
}

}  // namespace

int main(int argc, char** argv) { return pdsd::guarded_main(run, argc, argv); }
