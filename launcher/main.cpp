// pdsd-launch: the per-node agent, in torchrun's place.
//
//   pdsd-launch --standalone --nproc 2 configs/sft.yaml [key=value ...]
//   pdsd-launch --nproc 4 -- python train.py        # any program written for torchrun
//   pdsd-launch --nnodes 2 --nproc 8 --rdzv-endpoint node0:29400 configs/sft.yaml   # on every node
//
// It validates the job config before any process starts, settles the control plane (the agent that
// can bind the rendezvous address hosts the coordinator; the others join it), and hands over to the
// node agent (launcher/node_agent.h): rendezvous, attempts, workers, failures, restarts.
// docs/launcher.md describes the options, the protocol and the failure semantics.
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <thread>

#include "common/job_config.h"
#include "common/log.h"
#include "common/main_guard.h"
#include "launcher/control_security.h"
#include "launcher/control_server.h"
#include "launcher/endpoint.h"
#include "launcher/job_registry.h"
#include "launcher/launch_options.h"
#include "launcher/node_agent.h"

namespace {

std::string worker_binary() {
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe");
  auto candidate = self.parent_path() / "pdsd-worker";
  if (!std::filesystem::exists(candidate)) {
    throw pdsd::Error(pdsd::str("pdsd-worker not found next to pdsd-launch (", candidate.string(), ")"));
  }
  return candidate.string();
}

// A second agent on the coordinator's host may find the generated token in the job registry.
std::string token_from_registry(const pdsd::Endpoint& endpoint, double timeout_s) {
  auto give_up = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  do {
    if (auto job = pdsd::registered_job(endpoint.str())) return job->token;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  } while (std::chrono::steady_clock::now() < give_up);
  return {};
}

int run(int argc, char** argv) {
  pdsd::LaunchOptions opt;
  if (!pdsd::parse_launch_options(argc, argv, opt)) return 0;
  pdsd::log::init({.prefix = "agent", .level = pdsd::log::level_from_env().value_or(pdsd::log::Level::info)});

  pdsd::NodeAgentSetup setup;
  setup.options = opt;
  setup.command = opt.program;
  if (!opt.config_path.empty()) {
    // Validate before any worker starts: a bad key fails here, once, not in every rank.
    pdsd::JobConfig config = pdsd::load_job_config(opt.config_path, opt.overrides);
    pdsd::log::info("config ", opt.config_path, " valid: ", config.finetuning_type, " SFT of ",
                    config.model_name_or_path, " on ", config.dataset, ", zero_stage ", config.zero_stage);
    setup.command = {worker_binary(), opt.config_path};
    setup.command.insert(setup.command.end(), opt.overrides.begin(), opt.overrides.end());
  }
  if (!opt.cluster.empty()) {
    pdsd::log::info(opt.cluster, ": node rank ", opt.node_rank, ", ", opt.max_nodes, " node(s), rendezvous ",
                    opt.rdzv_endpoint.empty() ? opt.master_addr : opt.rdzv_endpoint, ", id ", opt.rdzv_id);
  }

  pdsd::ControlSecurity& security = setup.security;
  security = {.token = opt.token, .tls_cert = opt.tls_cert, .tls_key = opt.tls_key, .tls_ca = opt.tls_ca};
  pdsd::validate_tls_files(security);

  pdsd::CoordinatorOptions coordinator{.rdzv_id = opt.rdzv_id, .min_nodes = opt.min_nodes, .max_nodes = opt.max_nodes,
                                       .max_restarts = opt.max_restarts, .join_timeout_s = opt.join_timeout_s,
                                       .last_call_s = opt.last_call_s, .heartbeat_interval_s = opt.heartbeat_interval_s,
                                       .heartbeat_timeout_s = opt.heartbeat_timeout_s};
  std::optional<pdsd::Endpoint> listen;  // set when this agent hosts the coordinator
  pdsd::Endpoint rendezvous;
  if (opt.max_nodes == 1) {
    // One node: the coordinator is this agent's own, on loopback at a free port unless told where.
    listen = opt.rdzv_endpoint_given ? pdsd::parse_endpoint(opt.rdzv_endpoint, pdsd::kDefaultRdzvPort, "--rdzv-endpoint")
                                     : pdsd::Endpoint{"127.0.0.1", 0};
    coordinator.master_addr = opt.master_addr;
    // --standalone without a port: a fresh free port per attempt (the last one may linger in TIME_WAIT).
    coordinator.master_port = opt.standalone && !opt.master_port_given ? 0 : opt.master_port;
    setup.options.node_rank = 0;
  } else {
    rendezvous = pdsd::parse_endpoint(opt.rdzv_endpoint.empty() ? opt.master_addr : opt.rdzv_endpoint,
                                      pdsd::kDefaultRdzvPort, "--rdzv-endpoint");
    coordinator.master_addr = opt.master_addr_given ? opt.master_addr : rendezvous.host;
    coordinator.master_port = opt.master_port_given ? opt.master_port : 0;
    // Only an agent that may host the coordinator tries the port: a probe by another agent on this
    // host would hold it for a moment and could make node 0's own bind fail.
    pdsd::BindProbe probe = opt.node_rank > 0 ? pdsd::BindProbe::not_local : pdsd::probe_bind(rendezvous);
    if (opt.node_rank == 0 && probe != pdsd::BindProbe::bindable) {
      throw pdsd::InputError(pdsd::str("node rank 0 hosts the coordinator at --rdzv-endpoint ", rendezvous.str(), ", but this host cannot bind it (",
                                       probe == pdsd::BindProbe::in_use ? "address in use" : "not an address of this host",
                                       "); run node rank 0 on the rendezvous host, or give --rdzv-endpoint a free port there"));
    }
    if (probe == pdsd::BindProbe::bindable && opt.node_rank <= 0) listen = rendezvous;
  }

  std::unique_ptr<pdsd::ControlServer> server;
  std::unique_ptr<pdsd::JobRegistration> registration;
  if (listen) {
    const bool generated = security.token.empty();
    if (generated) security.token = pdsd::generate_job_token();
    try {
      server = std::make_unique<pdsd::ControlServer>(*listen, security, coordinator);
    } catch (const pdsd::Error&) {
      // Without a node rank, another agent on this host may have bound the port a moment earlier: join it.
      if (opt.max_nodes == 1 || opt.node_rank >= 0) throw;
      if (generated) security.token.clear();
    }
  }
  if (server) {
    if (opt.max_nodes > 1 && opt.token.empty()) {
      pdsd::log::warn("no --rdzv-token / PDSD_JOB_TOKEN: generated one, which only agents on this host can find; "
                      "set PDSD_JOB_TOKEN on every node for agents on other hosts");
    }
    setup.hosted = &server->coordinator();
    setup.options.node_rank = 0;  // the coordinator's host is node 0, so MASTER_ADDR (its address) hosts rank 0
    // Workers and pdsd-ctl on this host reach it at the address it is bound to.
    setup.coordinator_endpoint = server->endpoint().str();
    registration = std::make_unique<pdsd::JobRegistration>(setup.coordinator_endpoint, security.token, opt.rdzv_id);
    pdsd::log::info("control plane at ", setup.coordinator_endpoint, " (token ", pdsd::token_fingerprint(security.token),
                    security.tls() ? ", mutual TLS" : "", "; pdsd-ctl status)");
  } else {
    if (security.token.empty()) {
      // On the coordinator's host (two shells on one machine) its generated token is in the registry.
      const bool local = pdsd::is_local_host(rendezvous.host);
      security.token = token_from_registry(rendezvous, local ? opt.join_timeout_s : 0);
      if (security.token.empty()) {
        throw pdsd::InputError(pdsd::str("a multi-node job needs its token on every node: set PDSD_JOB_TOKEN (e.g. export "
                                         "PDSD_JOB_TOKEN=$(openssl rand -hex 32)) or --rdzv-token, the same on all nodes"));
      }
    }
    setup.coordinator_endpoint = rendezvous.str();
  }
  return pdsd::run_node_agent(setup);
}

}  // namespace

int main(int argc, char** argv) { return pdsd::guarded_main(run, argc, argv); }
