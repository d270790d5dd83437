// Learning-rate schedules with warmup, as transformers' get_scheduler builds them (LambdaLR): the
// rate used for optimizer step k (0-based) is peak × factor(k).
//   linear:   k/W during warmup, then (N-k)/(N-W) down to 0
//   cosine:   k/W during warmup, then 0.5·(1 + cos(π·(k-W)/(N-W)))
//   constant: 1;  constant_with_warmup: k/W then 1
#pragma once

#include <cstdint>
#include <string>

namespace pdsd {

struct LrSchedule {
  std::string type = "linear";
  double peak = 5e-5;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;

  double at(int64_t step) const;
};

// warmup steps from the config: warmup_steps if given, else ceil(warmup_ratio × total) (as transformers).
int64_t resolve_warmup_steps(int64_t warmup_steps, double warmup_ratio, int64_t total_steps);

}  // namespace pdsd
