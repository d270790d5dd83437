// Collectives over NCCL, for ranks that each own a GPU. Communicators come from a unique id that
// rank 0 creates and hands to the others through the job's rendezvous store (rendezvous_store.h).
//
//   auto c = make_nccl_collectives(env, {.timeout = std::chrono::seconds(job.ddp_timeout), .device = 0});
//   c->all_reduce(grads_on_gpu);     // ordered on the current CUDA stream; the host does not wait
//
// Every collective runs on one dedicated, high-priority CUDA stream of the communicator: it waits
// (an event, on the GPU) for the work already queued on the caller's current stream, and the current
// stream waits (again on the GPU) for the collective, so results are ready for whatever the caller
// queues next and the host never synchronises on the hot path. CPU tensors (step token counts) are
// staged through the GPU.
//
// Timeouts cannot be a blocking wait here (the host does not wait), so a watchdog thread polls
// each collective's completion event: one not done within its timeout — a peer died, hung, or
// issued a different collective — is reported naming this rank, the operation and its size
// ("rank 1: all_reduce of 121408 float32 elements (485632 bytes) did not complete within 30 s
// (nccl)"), the communicator is aborted, and the process exits with status 1, so the launcher stops
// the job and names the cause instead of every rank hanging. Asynchronous NCCL errors end the same way.
// The timeout counts from when the host queues the call, so compute queued before it counts too: keep
// timeouts well above a step's length (the job's ddp_timeout is 30 minutes by default).
//
// Only in CUDA builds; elsewhere make_nccl_collectives throws an InputError that says so.
#pragma once

#include <chrono>
#include <memory>
#include <optional>

#include <torch/csrc/distributed/c10d/Store.hpp>

#include "common/worker_env.h"
#include "worker/dist/collectives.h"

namespace pdsd::dist {

struct NcclCollectivesOptions {
  std::chrono::milliseconds timeout = std::chrono::seconds(1800);  // every collective's default
  std::optional<std::chrono::milliseconds> store_timeout;          // rendezvous + init; unset: timeout
  int device = 0;                                                  // this rank's CUDA device
  // A rendezvous store already connected (benchmarks share one); null: connect to MASTER_ADDR:PORT.
  c10::intrusive_ptr<c10d::Store> store;
};

// Whether this build has NCCL (configured with -DPDSD_CUDA=ON).
bool nccl_built();

std::unique_ptr<Collectives> make_nccl_collectives(const WorkerEnv& env, const NcclCollectivesOptions& options);

}  // namespace pdsd::dist
