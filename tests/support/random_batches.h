// Micro-batches of random token ids that train on every position: what the trainer tests feed a
// tiny model when only the mechanics matter, not the data.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "worker/train/trainer.h"

namespace pdsd::testing {

// `count` micro-batches of `rows` × `length` ids below `vocab`, drawn from the current seed.
inline std::vector<TrainBatch> random_batches(int64_t vocab, int count, int64_t rows, int64_t length) {
  std::vector<TrainBatch> out;
  for (int m = 0; m < count; ++m) {
    TrainBatch b;
    b.tokens.input_ids = at::randint(vocab, {rows, length}, at::kLong);
    b.tokens.position_ids = at::arange(length, at::kLong).expand({rows, length}).contiguous();
    b.labels = b.tokens.input_ids.clone();
    b.real_tokens = b.tokens.input_ids.numel();
    out.push_back(b);
  }
  return out;
}

}  // namespace pdsd::testing
