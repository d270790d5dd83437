// Which collectives backend a job's ranks use, from `ddp_backend` and the machine:
//   nccl — every local rank on its own GPU (NCCL cannot put two ranks on one GPU);
//   gloo — CPU jobs, or more local ranks than GPUs (GPU tensors then travel through host copies);
//   auto — nccl when this build has it and the node has a GPU for every local rank, else gloo.
// Two agents on one host (a simulated two-node job) may both map their local ranks onto the same
// GPUs, and nodes may differ; NCCL refuses a shared GPU. So every rank publishes in the rendezvous
// store whether it can run NCCL and which physical GPU it would use (boot id + PCI bus id), and
// reads everyone's: NCCL only if every rank can and no two share a GPU. Otherwise auto falls back to
// gloo on every rank (with a warning) and an explicit nccl is an InputError naming the ranks. Every
// rank sees the same table, so all pick the same backend.
#pragma once

#include <memory>

#include "common/job_config.h"
#include "common/worker_env.h"
#include "worker/dist/collectives.h"

namespace pdsd::dist {

// The CUDA devices this process sees (0 in a CPU build or on a machine without GPUs).
int visible_gpus();

// "nccl" or "gloo" from this node alone; throws InputError when `ddp_backend: nccl` cannot work
// here, saying why.
std::string choose_backend(const JobConfig& job, const WorkerEnv& env);

// The collectives for a job of WORLD_SIZE > 1 (null for one process).
std::unique_ptr<Collectives> make_job_collectives(const JobConfig& job, const WorkerEnv& env);

}  // namespace pdsd::dist
