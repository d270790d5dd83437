// Creates libtorch's c10d::ProcessGroupGloo and hands it back as a plain c10d::Backend, so that no
// other file needs ProcessGroupGloo.hpp — the one header that pulls in gloo's own headers, which the
// torch wheel does not ship (docs/design/cpu-collectives.md says how and why they are confined).
//
// Everything after creation goes through c10d::Backend's virtual calls (allreduce, broadcast,
// _allgather_base, _reduce_scatter_base, barrier), which dispatch into libtorch's compiled code.
#pragma once

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace pdsd::dist {

// Which network address Gloo's TCP transport binds to, in order of preference:
struct GlooDeviceChoice {
  std::vector<std::string> interfaces;  // GLOO_SOCKET_IFNAME's interfaces (one device each), or
  std::string hostname;                 // an address or hostname to bind to (e.g. "127.0.0.1"), or
                                        // neither: this machine's hostname, falling back to loopback.
};

// Connects `size` ranks through `store` (each must call this with the same store and size) and
// returns once all are connected; `timeout` bounds that and is every collective's default timeout.
// The returned backend keeps `store` alive.
c10::intrusive_ptr<c10d::Backend> make_gloo_process_group(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                                          int size, std::chrono::milliseconds timeout,
                                                          const GlooDeviceChoice& device);

}  // namespace pdsd::dist
