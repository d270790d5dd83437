// Rotary position embeddings as Qwen2 and Llama compute them in transformers: inverse frequencies from
// rope_theta (with Llama 3's frequency rescaling when rope_type is "llama3"), cos/sin per position in
// fp32, applied with rotate_half (the two halves of each head, not interleaved pairs).
#pragma once

#include <ATen/ATen.h>

#include "worker/model_config.h"

namespace pdsd {

// [head_dim / 2] fp32 inverse frequencies.
at::Tensor rope_inverse_frequencies(const ModelConfig& config);

struct RotaryTables {
  at::Tensor cos;  // [B, T, head_dim], in the compute dtype
  at::Tensor sin;  // the same, with its first half negated (rotate_half's sign, applied once per batch)
};

// Tables for position_ids [B, T]; positions restart per packed sample, so they are given, not implied.
RotaryTables rotary_tables(const at::Tensor& inverse_frequencies, const at::Tensor& position_ids, at::ScalarType dtype);

// x: [B, heads, T, head_dim] (heads_axis 1) or [B, T, heads, head_dim] (heads_axis 2);
// returns x * cos + rotate_half(x) * sin.
at::Tensor apply_rotary(const at::Tensor& x, const RotaryTables& tables, int64_t heads_axis = 1);

}  // namespace pdsd
