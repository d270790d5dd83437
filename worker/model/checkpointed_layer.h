// Activation checkpointing for one decoder layer: the forward pass keeps only the layer's input; the
// backward pass runs the layer again with gradients on (restoring the RNG state, so LoRA dropout draws
// the same mask) and back-propagates through that recomputation. Memory for activations falls from
// every layer's intermediates to one hidden state per layer, for one extra forward per layer.
// ZeRO-3 (worker/train/zero3_parameters.h) runs every layer this way, with LayerWeights around each
// run to gather the layer's weights before it and free them (reducing their gradients) after.
#pragma once

#include <ATen/ATen.h>

namespace pdsd {

class CausalLM;
struct AttentionLayout;

// Where a layer's weights come from when they are not simply the model's: called around each run of
// the layer — the forward pass, and its recomputation in backward.
class LayerWeights {
 public:
  virtual ~LayerWeights() = default;
  virtual void acquire(int64_t layer, bool for_backward) = 0;
  // After backward the weights' gradients have been accumulated and may be consumed.
  virtual void release(int64_t layer, bool after_backward) = 0;
};

// `weights` may be null (the model's own weights).
at::Tensor checkpointed_layer_forward(const CausalLM& model, int64_t layer, const at::Tensor& x, const at::Tensor& cos,
                                      const at::Tensor& sin, const AttentionLayout& attention,
                                      LayerWeights* weights = nullptr);

}  // namespace pdsd
