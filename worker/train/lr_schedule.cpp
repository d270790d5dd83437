#include "worker/train/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace pdsd {

double LrSchedule::at(int64_t step) const {
  if (type == "constant") return peak;
  if (step < warmup_steps) return peak * static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup_steps));
  if (type == "constant_with_warmup") return peak;
  const double span = static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
  const double progress = static_cast<double>(step - warmup_steps) / span;
  if (type == "linear") return peak * std::max(0.0, 1.0 - progress);
  if (type == "cosine") return peak * std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
  throw Error(str("unknown lr_scheduler_type '", type, "'"));
}

int64_t resolve_warmup_steps(int64_t warmup_steps, double warmup_ratio, int64_t total_steps) {
  if (warmup_steps > 0) return warmup_steps;
  return static_cast<int64_t>(std::ceil(warmup_ratio * static_cast<double>(total_steps)));
}

}  // namespace pdsd
