// Next-token cross-entropy fused with the lm_head projection, computed a chunk of tokens at a time so
// that fp32 logits for the whole vocabulary (Qwen's is 151,936) never exist for all tokens at once.
//
// The forward pass also computes the gradients with respect to the hidden states and the lm_head
// weight, chunk by chunk, and keeps only those; backward scales them by the incoming gradient. Peak
// extra memory is one chunk's logits instead of tokens × vocab.
//
// Labels follow transformers: aligned with input_ids, shifted inside (position t predicts label
// t+1), -100 ignored. The result is the SUM over predicted tokens plus their count, so gradient
// accumulation and data parallelism can divide by the global count (what HF calls num_items_in_batch).
//
//   auto [loss_sum, tokens] = causal_lm_loss(hidden, model.lm_head_weight(), labels);
//   (loss_sum / global_tokens).backward();
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace pdsd {

constexpr int64_t kIgnoreIndex = -100;

struct LossSum {
  at::Tensor sum;     // 0-dim fp32, differentiable w.r.t. hidden and weight
  int64_t tokens = 0;  // predicted tokens (labels != -100 after the shift); -1 when not counted
};

// hidden [B, T, H] (compute dtype), weight [V, H], labels [B, T] int64. `count_tokens` false skips
// the count, which reads a number back from the GPU: the trainer counts a step's tokens once, before
// its first forward, so that no micro-batch waits for the GPU in the middle.
LossSum causal_lm_loss(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                       int64_t chunk_tokens = 1024, bool count_tokens = true);

// The same sum from only the positions that predict a label (TrainBatch::loss_positions, flat
// indices into B × T) and their labels: no vocabulary projection for prompt or padding positions, and
// the count is the number of positions, known on the host. Every target must be a label (none -100).
LossSum causal_lm_loss_at(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& positions,
                          const at::Tensor& targets, int64_t chunk_tokens = 1024);

}  // namespace pdsd
