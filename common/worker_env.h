// The environment a launcher hands each worker process, with torchrun's variable names so that a
// script written for torchrun runs under pdsd-launch unchanged (and pdsd-worker under torchrun).
#pragma once

#include <map>
#include <string>

namespace pdsd {

struct WorkerEnv {
  int rank = 0;              // RANK: global rank
  int local_rank = 0;        // LOCAL_RANK: rank on this node
  int world_size = 1;        // WORLD_SIZE
  int local_world_size = 1;  // LOCAL_WORLD_SIZE: workers on this node
  int group_rank = 0;        // GROUP_RANK: node rank
  std::string master_addr = "127.0.0.1";  // MASTER_ADDR
  int master_port = 29500;                // MASTER_PORT
  int restart_count = 0;                  // TORCHELASTIC_RESTART_COUNT

  // The variables to set for a child process.
  std::map<std::string, std::string> to_variables() const;
};

// Reads the variables above from the process environment; absent ones keep their defaults (a single
// process). A malformed or inconsistent value throws InputError naming the variable.
WorkerEnv read_worker_env();

}  // namespace pdsd
