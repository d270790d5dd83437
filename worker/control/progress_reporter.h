// A worker's progress (step, loss, tokens/s) sent to the job's coordinator for `pdsd-ctl status`.
// Best effort by design: report() only stores the latest values and wakes a sender thread, which
// sends with a short deadline; while the coordinator is slow or gone, reports are dropped and
// training never waits. This header includes nothing from gRPC, so libtorch translation units
// (worker/main.cpp) can use it.
//
//   auto reporter = ProgressReporter::from_env(env.rank, env.restart_count);  // null outside pdsd-launch
//   if (reporter) reporter->report(step, loss, tokens_per_s);
#pragma once

#include <cstdint>
#include <memory>

namespace pdsd {

class ProgressReporter {
 public:
  // From PDSD_CONTROL_ENDPOINT and PDSD_JOB_TOKEN (and PDSD_TLS_CERT/KEY/CA), which pdsd-launch sets;
  // null when PDSD_CONTROL_ENDPOINT is not set (torchrun, a single process).
  static std::unique_ptr<ProgressReporter> from_env(int rank, int attempt);
  virtual ~ProgressReporter() = default;  // sends what is pending (within the deadline), then stops
  virtual void report(int64_t step, double loss, double tokens_per_s) = 0;
};

}  // namespace pdsd
