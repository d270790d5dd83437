// One node's part of a job, from the rendezvous to the end: join the coordinator, then for each
// attempt meet the other nodes at its barrier, run this node's workers (launcher/worker_group.h)
// with torchrun's environment and the control plane's, tell the coordinator how they ended, and do
// what the job decides: restart with everyone, wait for the other nodes, or end with the job's exit
// code. Every agent prints the same root cause, taken from the coordinator.
//
//   NodeAgentSetup setup{...};
//   return run_node_agent(setup);   // the process exit code
#pragma once

#include <string>
#include <vector>

#include "launcher/control_security.h"
#include "launcher/launch_options.h"

namespace pdsd {

class CoordinatorService;

struct NodeAgentSetup {
  LaunchOptions options;
  std::vector<std::string> command;   // each worker's argv
  std::string coordinator_endpoint;   // host:port
  ControlSecurity security;
  CoordinatorService* hosted = nullptr;  // set when this agent hosts the coordinator
};

int run_node_agent(const NodeAgentSetup& setup);

}  // namespace pdsd
