// The rendezvous every backend starts from, torchrun's: rank 0 hosts a c10d TCPStore at
// MASTER_ADDR:MASTER_PORT, the others connect to it. Gloo exchanges its ranks' addresses through it;
// NCCL its unique id. Returns once all `world_size` ranks have reached the store, or throws
// pdsd::Error naming the rank and the address after `timeout`.
#pragma once

#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <optional>

#include "common/worker_env.h"

namespace pdsd::dist {

c10::intrusive_ptr<c10d::Store> connect_rendezvous_store(const WorkerEnv& env, std::chrono::milliseconds timeout,
                                                         std::optional<int> master_listen_fd = std::nullopt);

}  // namespace pdsd::dist
