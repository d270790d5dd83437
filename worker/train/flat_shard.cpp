#include "worker/train/flat_shard.h"

#include <algorithm>

#include "common/error.h"

namespace pdsd {

FlatShardLayout::FlatShardLayout(const std::vector<int64_t>& numels, int rank_, int world_size_)
    : rank(rank_), world_size(world_size_) {
  PDSD_CHECK(world_size >= 1 && rank >= 0 && rank < world_size, "flat shard layout: rank ", rank, " of ", world_size);
  for (int64_t n : numels) {
    offsets.push_back(total);
    total += n;
  }
  shard = (total + world_size - 1) / world_size;
  padded = shard * world_size;
  const int64_t begin = shard_begin(), end = begin + shard;
  for (size_t i = 0; i < numels.size(); ++i) {
    const int64_t lo = std::max(offsets[i], begin), hi = std::min(offsets[i] + numels[i], end);
    if (lo < hi) pieces.push_back({i, lo - offsets[i], lo - begin, hi - lo});
  }
}

}  // namespace pdsd
