// How ZeRO lays a list of tensors out flat and splits it across ranks: the tensors in the given order,
// one after another, padded at the end to a multiple of the world size; rank r owns elements
// [r·shard, (r+1)·shard). A shard may cut a tensor in two; each part inside a rank's shard is a
// Piece (the tensor, where in it, where in the shard). ZeRO-1/2 (sharded_adamw.h) lays out all
// trainable parameters this way; ZeRO-3 (zero3_parameters.h) each layer's. Checkpoints record the
// same numbers, so a shard can be placed in the global order whatever the world size that wrote it.
#pragma once

#include <cstdint>
#include <vector>

namespace pdsd {

struct FlatShardLayout {
  struct Piece {
    size_t tensor = 0;         // index into the laid-out tensors
    int64_t tensor_offset = 0;  // first element of the piece within that tensor (flattened)
    int64_t shard_offset = 0;   // where it sits in this rank's shard
    int64_t length = 0;
  };

  FlatShardLayout(const std::vector<int64_t>& numels, int rank, int world_size);

  int rank = 0;
  int world_size = 1;
  int64_t total = 0;   // sum of the numels
  int64_t shard = 0;   // elements per rank
  int64_t padded = 0;  // shard · world_size ≥ total
  std::vector<int64_t> offsets;  // each tensor's first element in the flat order
  std::vector<Piece> pieces;     // this rank's, in flat order
  int64_t shard_begin() const { return static_cast<int64_t>(rank) * shard; }
};

}  // namespace pdsd
