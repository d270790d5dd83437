#include "worker/dist/rendezvous_store.h"

#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "common/error.h"
#include "worker/dist/collectives.h"

namespace pdsd::dist {

c10::intrusive_ptr<c10d::Store> connect_rendezvous_store(const WorkerEnv& env, std::chrono::milliseconds timeout,
                                                         std::optional<int> master_listen_fd) {
  PDSD_CHECK(timeout.count() > 0, "store timeout must be positive");
  if (env.master_port < 1 || env.master_port > 65535) {
    throw InputError(str("MASTER_PORT=", env.master_port, " is not a TCP port (1..65535)"));
  }
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(env.master_port);
  options.isServer = env.rank == 0;
  options.numWorkers = env.world_size;
  options.waitWorkers = true;  // rank 0 returns only when all ranks reached the store
  options.timeout = timeout;
  if (env.rank == 0) options.masterListenFd = master_listen_fd;
  try {
    return c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
  } catch (const std::exception& e) {
    throw Error(str("rank ", env.rank, ": ", env.rank == 0 ? "hosting the rendezvous store at " : "reaching the rendezvous store at ",
                    env.master_addr, ":", env.master_port, " (MASTER_ADDR:MASTER_PORT) for ", env.world_size,
                    " ranks failed within ", format_duration(timeout), ": ", exception_cause(e)));
  }
}

}  // namespace pdsd::dist
