// How many threads libtorch's CPU operators may use in a worker process.
//
// A worker that drives a GPU does its arithmetic there; its host only launches kernels, one after
// another, from the main thread and autograd's backward thread. A pool of CPU operator threads has
// nothing to compute, and with several workers on a node the pools (libgomp's threads spin after
// each parallel region) compete for the cores the launching threads need. So a GPU worker uses one,
// as torchrun's default OMP_NUM_THREADS=1 for several workers per node gives, unless the user chose
// a number. A CPU worker keeps the launcher's share of the cores (cores / nproc), where it computes.
// Measured on 2×H200 (0.5B, host-bound steps): no difference beyond the ±15% that such runs vary
// from one to the next; the case for it is the contention it rules out, not a measured gain.
#pragma once

#include <optional>

namespace pdsd {

// Set by pdsd-launch next to OMP_NUM_THREADS when the value is its default, not the user's.
inline constexpr const char* kOmpThreadsDefaultedVariable = "PDSD_OMP_NUM_THREADS_DEFAULTED";

// The number of CPU operator threads to set, or nullopt to leave the process's own.
// `omp_num_threads` and `defaulted` are the two variables' values (null when unset).
std::optional<int> host_operator_threads(bool drives_gpu, const char* omp_num_threads, const char* defaulted);

}  // namespace pdsd
