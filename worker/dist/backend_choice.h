// Which collectives backend a job's ranks use, from `ddp_backend` and the machine:
//   nccl — every local rank on its own GPU (NCCL cannot put two ranks on one GPU);
//   gloo — CPU jobs, or more local ranks than GPUs (GPU tensors then travel through host copies);
//   auto — nccl when this build has it and the node has a GPU for every local rank, else gloo.
// Every rank decides alike (same config, same kind of node), so they all pick the same backend.
#pragma once

#include <memory>

#include "common/job_config.h"
#include "common/worker_env.h"
#include "worker/dist/collectives.h"

namespace pdsd::dist {

// The CUDA devices this process sees (0 in a CPU build or on a machine without GPUs).
int visible_gpus();

// "nccl" or "gloo"; throws InputError when `ddp_backend: nccl` cannot work here, saying why.
std::string choose_backend(const JobConfig& job, const WorkerEnv& env);

// The collectives for a job of WORLD_SIZE > 1 (null for one process).
std::unique_ptr<Collectives> make_job_collectives(const JobConfig& job, const WorkerEnv& env);

}  // namespace pdsd::dist
