// pdsd-launch's command line, with torchrun's option names, each also readable from the PET_*
// environment variable torchrun uses (PET_NPROC_PER_NODE, PET_MASTER_PORT, ...), so Slurm and
// Kubernetes templates written for torchrun carry over.
#pragma once

#include <string>
#include <vector>

namespace pdsd {

struct LaunchOptions {
  int min_nodes = 1;
  int max_nodes = 1;
  int nproc_per_node = 1;
  int node_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  bool master_port_given = false;
  bool standalone = false;
  std::string rdzv_id = "none";
  int max_restarts = 0;
  double monitor_interval_s = 0.1;
  double stop_grace_s = 30.0;      // SIGTERM → SIGKILL grace for workers
  std::string log_dir;             // per-rank log files; empty: console only
  int redirects = 0;               // torchrun: 0 console, nonzero: files only (needs --log-dir)
  std::vector<int> local_ranks_filter;  // console shows only these local ranks (all when empty)

  // Either a YAML job config (+ key=value overrides) for the built-in worker, or a program after `--`.
  std::string config_path;
  std::vector<std::string> overrides;
  std::vector<std::string> program;
};

// Parses argv; throws InputError naming the option for a bad value. Returns false when the command
// line asked only for help (already printed).
bool parse_launch_options(int argc, char** argv, LaunchOptions& out);

}  // namespace pdsd
