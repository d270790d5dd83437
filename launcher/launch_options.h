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
  int node_rank = -1;              // -1: assigned at the rendezvous (0 on a single node)
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  bool master_addr_given = false;
  bool master_port_given = false;
  bool standalone = false;
  std::string rdzv_endpoint;       // host[:port] of the coordinator; "" : master_addr:29400 (one node: loopback, any port)
  bool rdzv_endpoint_given = false;
  std::string rdzv_id = "none";
  // --rdzv-conf key=value,...: torchrun's join_timeout and last_call_timeout, and the heartbeats.
  double join_timeout_s = 900;
  double last_call_s = 30;
  double heartbeat_interval_s = 0.5;
  double heartbeat_timeout_s = 5;
  // Security of the control plane (launcher/control_security.h).
  std::string token;               // --rdzv-token / PET_RDZV_TOKEN / PDSD_JOB_TOKEN; "" : generated (one node)
  std::string tls_cert, tls_key, tls_ca;
  std::string cluster;             // "slurm" / "kubernetes" when settings came from there (for the log)
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

// The default rendezvous port, as torchrun's.
constexpr int kDefaultRdzvPort = 29400;

// Parses argv; throws InputError naming the option for a bad value. Returns false when the command
// line asked only for help (already printed).
bool parse_launch_options(int argc, char** argv, LaunchOptions& out);

}  // namespace pdsd
