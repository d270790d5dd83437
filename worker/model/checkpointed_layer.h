// Activation checkpointing for one decoder layer: the forward pass keeps only the layer's input; the
// backward pass runs the layer again with gradients on (restoring the RNG state, so LoRA dropout draws
// the same mask) and back-propagates through that recomputation. Memory for activations falls from
// every layer's intermediates to one hidden state per layer, for one extra forward per layer.
// The same shape will later host ZeRO-3's gather-before-use / free-after in one place.
#pragma once

#include <ATen/ATen.h>

namespace pdsd {

class CausalLM;

at::Tensor checkpointed_layer_forward(const CausalLM& model, int64_t layer, const at::Tensor& x, const at::Tensor& cos,
                                      const at::Tensor& sin, const at::Tensor& attention_mask);

}  // namespace pdsd
