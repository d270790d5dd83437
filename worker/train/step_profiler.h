// Where a training step's time goes, for the developer chasing speed on a GPU machine: with
// PDSD_PROFILE=<first step>:<steps> (e.g. 5:3) each rank records those optimizer steps with libtorch's
// profiler (Kineto: CPU operators, and CUDA kernels where there is a GPU) and writes, into the
// output dir:
//   profile-rank<r>.json   a Chrome trace (chrome://tracing, Perfetto)
//   profile-rank<r>.txt    the kernels and the operators that took the most time, totals per name
// The steps before <first> warm up the caching allocator and cuBLAS; profiling slows the steps it
// records, so their tokens/s are not figures.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace pdsd {

class StepProfiler {
 public:
  // Reads PDSD_PROFILE; nothing when unset. A malformed value is an error naming it.
  static std::optional<StepProfiler> from_env(const std::string& output_dir, int rank, bool on_gpu);

  void before_step(int64_t step);  // 1-based number of the step about to run
  void after_step(int64_t step);

  int64_t first() const { return first_; }
  int64_t last() const { return first_ + count_ - 1; }

 private:
  StepProfiler(std::string output_dir, int rank, bool on_gpu, int64_t first, int64_t count)
      : output_dir_(std::move(output_dir)), rank_(rank), on_gpu_(on_gpu), first_(first), count_(count) {}
  std::string output_dir_;
  int rank_ = 0;
  bool on_gpu_ = false;
  int64_t first_ = 0, count_ = 0;
  bool running_ = false;
};

}  // namespace pdsd
