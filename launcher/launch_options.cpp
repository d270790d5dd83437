#include "launcher/launch_options.h"

#include <CLI/CLI.hpp>

#include <cstdlib>
#include <iostream>

#include "common/error.h"
#include "launcher/cluster_env.h"

namespace pdsd {

namespace {

// Fills an option from its PET_* variable when the command line did not give it (torchrun's rule).
void env_default(CLI::Option* option, const char* variable) { option->envname(variable); }

void parse_rdzv_conf(const std::string& text, LaunchOptions& out) {
  size_t start = 0;
  while (start < text.size()) {
    size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? text.size() : comma + 1;
    if (item.empty()) continue;
    auto eq = item.find('=');
    std::string key = item.substr(0, eq);
    double* target = key == "join_timeout" ? &out.join_timeout_s
                      : key == "last_call_timeout" ? &out.last_call_s
                      : key == "heartbeat_interval" ? &out.heartbeat_interval_s
                      : key == "heartbeat_timeout" ? &out.heartbeat_timeout_s
                                                   : nullptr;
    if (target == nullptr || eq == std::string::npos) {
      throw InputError(str("--rdzv-conf '", item, "': known keys are join_timeout, last_call_timeout, heartbeat_interval, "
                           "heartbeat_timeout (seconds), as key=value"));
    }
    try {
      *target = std::stod(item.substr(eq + 1));
    } catch (const std::exception&) {
      throw InputError(str("--rdzv-conf '", item, "': the value must be a number of seconds"));
    }
    if (*target <= 0) throw InputError(str("--rdzv-conf '", item, "': must be above 0"));
  }
  if (out.heartbeat_timeout_s < 2 * out.heartbeat_interval_s) {
    throw InputError(str("--rdzv-conf: heartbeat_timeout (", out.heartbeat_timeout_s, " s) must be at least twice heartbeat_interval (",
                         out.heartbeat_interval_s, " s)"));
  }
}

void parse_nnodes(const std::string& text, LaunchOptions& out) {
  auto colon = text.find(':');
  try {
    size_t used = 0;
    if (colon == std::string::npos) {
      out.min_nodes = out.max_nodes = std::stoi(text, &used);
      if (used != text.size()) throw std::invalid_argument(text);
    } else {
      out.min_nodes = std::stoi(text.substr(0, colon));
      out.max_nodes = std::stoi(text.substr(colon + 1));
    }
  } catch (const std::exception&) {
    throw InputError(str("--nnodes '", text, "' must be N or MIN:MAX"));
  }
  if (out.min_nodes < 1 || out.max_nodes < out.min_nodes) {
    throw InputError(str("--nnodes '", text, "': need 1 <= MIN <= MAX"));
  }
}

}  // namespace

bool parse_launch_options(int argc, char** argv, LaunchOptions& out) {
  CLI::App app{"pdsd-launch: start the workers of a pdsd job on this node (torchrun's options)\n\n"
               "  pdsd-launch --standalone --nproc 2 configs/sft.yaml [key=value ...]\n"
               "  pdsd-launch --nproc 4 -- python train.py --my-arg"};
  app.allow_extras(false);
  std::string nnodes = "1", rdzv_conf;
  auto* nnodes_option = app.add_option("--nnodes", nnodes, "number of nodes, N or MIN:MAX");
  env_default(nnodes_option, "PET_NNODES");
  env_default(app.add_option("--nproc-per-node,--nproc_per_node,--nproc", out.nproc_per_node, "workers on this node")
                  ->check(CLI::Range(1, 1024)),
              "PET_NPROC_PER_NODE");
  auto* node_rank = app.add_option("--node-rank,--node_rank", out.node_rank, "rank of this node (default: assigned at the rendezvous)")
                        ->check(CLI::NonNegativeNumber);
  env_default(node_rank, "PET_NODE_RANK");
  auto* master_addr = app.add_option("--master-addr,--master_addr", out.master_addr, "the workers' MASTER_ADDR (default: the rendezvous host)");
  env_default(master_addr, "PET_MASTER_ADDR");
  auto* port = app.add_option("--master-port,--master_port", out.master_port, "port on the rank-0 node")
                   ->check(CLI::Range(1, 65535));
  env_default(port, "PET_MASTER_PORT");
  auto* endpoint = app.add_option("--rdzv-endpoint,--rdzv_endpoint", out.rdzv_endpoint,
                                  "host:port where the coordinator listens (default: master-addr:29400)");
  env_default(endpoint, "PET_RDZV_ENDPOINT");
  auto* rdzv_id = app.add_option("--rdzv-id,--rdzv_id", out.rdzv_id, "job id shared by all nodes");
  env_default(rdzv_id, "PET_RDZV_ID");
  env_default(app.add_option("--rdzv-conf,--rdzv_conf", rdzv_conf,
                             "join_timeout=900,last_call_timeout=30,heartbeat_interval=0.5,heartbeat_timeout=5"),
              "PET_RDZV_CONF");
  auto* token = app.add_option("--rdzv-token,--rdzv_token", out.token, "the job's secret token (or PDSD_JOB_TOKEN)");
  env_default(token, "PET_RDZV_TOKEN");
  env_default(app.add_option("--tls-cert", out.tls_cert, "PEM certificate for mutual TLS on the control plane"), "PDSD_TLS_CERT");
  env_default(app.add_option("--tls-key", out.tls_key, "PEM private key of --tls-cert"), "PDSD_TLS_KEY");
  env_default(app.add_option("--tls-ca", out.tls_ca, "PEM CA that signed every node's certificate"), "PDSD_TLS_CA");
  env_default(app.add_flag("--standalone", out.standalone, "single node; pick a free port"), "PET_STANDALONE");
  env_default(app.add_option("--max-restarts,--max_restarts", out.max_restarts, "restarts of the worker group on failure")
                  ->check(CLI::NonNegativeNumber),
              "PET_MAX_RESTARTS");
  env_default(app.add_option("--monitor-interval,--monitor_interval", out.monitor_interval_s, "seconds between worker checks")
                  ->check(CLI::Range(0.01, 60.0)),
              "PET_MONITOR_INTERVAL");
  env_default(app.add_option("--stop-grace", out.stop_grace_s, "seconds workers get between SIGTERM and SIGKILL")
                  ->check(CLI::Range(0.0, 3600.0)),
              "PDSD_STOP_GRACE");
  env_default(app.add_option("--log-dir,--log_dir", out.log_dir, "write each rank's output to <dir>/attempt_<k>/rank_<r>.log"),
              "PET_LOG_DIR");
  env_default(app.add_option("--redirects,-r", out.redirects, "nonzero: worker output only to the log files")
                  ->check(CLI::Range(0, 3)),
              "PET_REDIRECTS");
  env_default(app.add_option("--local-ranks-filter,--local_ranks_filter", out.local_ranks_filter,
                             "show only these local ranks on the console (comma-separated)")
                  ->delimiter(','),
              "PET_LOCAL_RANKS_FILTER");
  std::vector<std::string> positional;
  app.add_option("config", positional, "job config YAML and key=value overrides");
  app.set_help_flag("-h,--help", "print this help");
  // Everything after `--` is a program to run in place of the built-in worker.
  std::vector<std::string> args(argv + 1, argv + argc);
  if (auto dash = std::find(args.begin(), args.end(), "--"); dash != args.end()) {
    out.program.assign(dash + 1, args.end());
    args.erase(dash, args.end());
  }
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp& e) {
    app.exit(e);
    return false;
  } catch (const CLI::ParseError& e) {
    throw InputError(str("pdsd-launch: ", e.what(), " (see pdsd-launch --help)"));
  }
  out.master_port_given = port->count() > 0 || std::getenv("PET_MASTER_PORT") != nullptr;
  out.master_addr_given = master_addr->count() > 0 || std::getenv("PET_MASTER_ADDR") != nullptr;
  out.rdzv_endpoint_given = !out.rdzv_endpoint.empty();
  if (out.token.empty()) {
    if (const char* t = std::getenv("PDSD_JOB_TOKEN"); t != nullptr) out.token = t;
  }
  parse_nnodes(nnodes, out);
  parse_rdzv_conf(rdzv_conf, out);
  // Under Slurm or Kubernetes, what the scheduler knows fills the options the user did not give.
  ClusterHints hints = detect_cluster();
  if (!hints.source.empty()) {
    out.cluster = hints.source;
    if (hints.node_rank && node_rank->count() == 0 && std::getenv("PET_NODE_RANK") == nullptr) out.node_rank = *hints.node_rank;
    if (hints.nnodes && nnodes_option->count() == 0 && std::getenv("PET_NNODES") == nullptr) out.min_nodes = out.max_nodes = *hints.nnodes;
    if (hints.rdzv_host && !out.rdzv_endpoint_given) {
      out.rdzv_endpoint = *hints.rdzv_host;
      if (!out.master_addr_given) out.master_addr = *hints.rdzv_host;
    }
    if (hints.rdzv_id && rdzv_id->count() == 0 && std::getenv("PET_RDZV_ID") == nullptr) out.rdzv_id = *hints.rdzv_id;
  }
  if (out.standalone && out.max_nodes > 1) throw InputError(str("--standalone is one node; --nnodes ", nnodes, " needs a rendezvous"));
  if (out.node_rank >= out.max_nodes) {
    throw InputError(str("--node-rank ", out.node_rank, " is not below --nnodes ", out.max_nodes));
  }
  if (out.redirects != 0 && out.log_dir.empty()) throw InputError("--redirects needs --log-dir: the output must go somewhere");
  if (!positional.empty() && !out.program.empty()) {
    throw InputError("give either a job config or a program after `--`, not both");
  }
  if (positional.empty() && out.program.empty()) throw InputError("nothing to run: give a job config YAML or `-- program args`");
  if (!positional.empty()) {
    out.config_path = positional.front();
    out.overrides.assign(positional.begin() + 1, positional.end());
  }
  return true;
}

}  // namespace pdsd
