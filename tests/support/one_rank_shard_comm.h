// ZeRO's collectives for a world of one rank, in the test's own process: every all-gather and
// reduce-scatter is a copy (what they are with one rank), the all-reduce nothing; all-gathers are
// counted, for the tests that count what ZeRO-3 gathers.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#include "worker/train/sharded_adamw.h"

namespace pdsd::testing {

struct OneRankShardComm {
  int64_t gathers = 0;
  ShardComm comm() {
    ShardComm c{.rank = 0, .world_size = 1};
    c.reduce_scatter_sum = [](const at::Tensor& out, const at::Tensor& in) { out.copy_(in); };
    c.all_gather = [this](const at::Tensor& out, const at::Tensor& in) { ++gathers, out.copy_(in); };
    c.all_gather_async = [this](const at::Tensor& out, const at::Tensor& in) {
      ++gathers, out.copy_(in);
      return dist::PendingCollective();
    };
    c.reduce_scatter_async = [](const at::Tensor& out, const at::Tensor& in) {
      out.copy_(in);
      return dist::PendingCollective();
    };
    c.all_reduce_sum = [](const at::Tensor&) {};
    return c;
  }
};

}  // namespace pdsd::testing
