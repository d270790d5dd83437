#include "launcher/launch_options.h"

#include <CLI/CLI.hpp>

#include <cstdlib>
#include <iostream>

#include "common/error.h"

namespace pdsd {

namespace {

// Fills an option from its PET_* variable when the command line did not give it (torchrun's rule).
void env_default(CLI::Option* option, const char* variable) { option->envname(variable); }

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
  std::string nnodes = "1", rdzv_endpoint;
  env_default(app.add_option("--nnodes", nnodes, "number of nodes, N or MIN:MAX"), "PET_NNODES");
  env_default(app.add_option("--nproc-per-node,--nproc_per_node,--nproc", out.nproc_per_node, "workers on this node")
                  ->check(CLI::Range(1, 1024)),
              "PET_NPROC_PER_NODE");
  env_default(app.add_option("--node-rank,--node_rank", out.node_rank, "rank of this node")->check(CLI::NonNegativeNumber),
              "PET_NODE_RANK");
  env_default(app.add_option("--master-addr,--master_addr", out.master_addr, "address of the rank-0 node"), "PET_MASTER_ADDR");
  auto* port = app.add_option("--master-port,--master_port", out.master_port, "port on the rank-0 node")
                   ->check(CLI::Range(1, 65535));
  env_default(port, "PET_MASTER_PORT");
  env_default(app.add_option("--rdzv-endpoint,--rdzv_endpoint", rdzv_endpoint, "host:port of the rendezvous"),
              "PET_RDZV_ENDPOINT");
  env_default(app.add_option("--rdzv-id,--rdzv_id", out.rdzv_id, "job id shared by all nodes"), "PET_RDZV_ID");
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
  parse_nnodes(nnodes, out);
  if (!rdzv_endpoint.empty()) {
    auto colon = rdzv_endpoint.rfind(':');
    out.master_addr = rdzv_endpoint.substr(0, colon);
    if (colon != std::string::npos) {
      try {
        out.master_port = std::stoi(rdzv_endpoint.substr(colon + 1));
      } catch (const std::exception&) {
        throw InputError(str("--rdzv-endpoint '", rdzv_endpoint, "' must be host:port"));
      }
      out.master_port_given = true;
    }
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
  if (out.max_nodes > 1) {
    throw InputError(str("--nnodes ", nnodes, ": multi-node jobs need the rendezvous service, which this build of "
                         "pdsd-launch does not have yet; run one node per job for now"));
  }
  return true;
}

}  // namespace pdsd
