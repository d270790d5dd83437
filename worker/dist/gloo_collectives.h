// Collectives over Gloo (TCP, host memory; GPU tensors are staged through host copies), through
// libtorch's c10d::ProcessGroupGloo: what torch.distributed uses for backend="gloo", so results and
// wire behaviour match a torchrun job's.
//
//   auto env = pdsd::read_worker_env();                     // RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
//   auto c = make_gloo_collectives(env, GlooCollectivesOptions::from_job(job));
//   c->all_reduce(grads);
//
// Rendezvous is torchrun's: rank 0 hosts a c10d TCPStore at MASTER_ADDR:MASTER_PORT, the others
// connect to it, and Gloo's ranks exchange their addresses through it. Creation returns once every
// rank is connected, or throws pdsd::Error (naming the rank and the address) after `store_timeout`.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/csrc/distributed/c10d/Store.hpp>

#include "common/job_config.h"
#include "common/worker_env.h"
#include "worker/dist/collectives.h"

namespace pdsd::dist {

struct GlooCollectivesOptions {
  // Every collective's default timeout: the job's `ddp_timeout`.
  std::chrono::milliseconds timeout = std::chrono::seconds(1800);
  // How long rank 0 waits for the others to reach the store, and they for it; unset: `timeout`.
  std::optional<std::chrono::milliseconds> store_timeout;
  // Network interfaces Gloo binds to (GLOO_SOCKET_IFNAME, as torch reads it). Empty: loopback when
  // MASTER_ADDR is a loopback address (every rank is on this machine), else this host's address.
  std::vector<std::string> interfaces;
  // For rank 0: an already listening socket for the store to take over instead of binding
  // MASTER_PORT itself, so that whoever chose the port keeps it reserved (tests; a launcher later).
  std::optional<int> master_listen_fd;
  // A rendezvous store already connected (the backend choice uses one first); null: connect here.
  c10::intrusive_ptr<c10d::Store> store;

  // The job's ddp_timeout and the process's GLOO_SOCKET_IFNAME (comma-separated).
  static GlooCollectivesOptions from_job(const JobConfig& job);
};

std::unique_ptr<Collectives> make_gloo_collectives(const WorkerEnv& env, const GlooCollectivesOptions& options);

}  // namespace pdsd::dist
