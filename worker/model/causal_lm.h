// The decoder-only causal LM of Qwen2 and Llama (2 and 3), written with ATen ops so autograd, CPU and
// CUDA all come from libtorch. It mirrors transformers' Qwen2ForCausalLM / LlamaForCausalLM exactly
// (tests/test_causal_lm_matches_transformers.cpp compares logits, loss and gradients):
//   embed → N × [RMSNorm → attention (GQA, RoPE, q/k/v bias for Qwen2) → residual →
//                RMSNorm → SwiGLU MLP → residual] → RMSNorm → lm_head (tied or not).
//
// Parameters are kept by their Hugging Face names, so loading, LoRA, sharding and export all speak
// the same names. The caller decides which are trainable (requires_grad) and their dtype.
//
//   CausalLM model(config, params);
//   at::Tensor h = model.hidden_states(batch);     // [B, T, hidden] after the final norm
//   auto [loss_sum, tokens] = causal_lm_loss(h, model.lm_head_weight(), labels);   (worker/train)
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "worker/model/lora.h"
#include "worker/model_config.h"

namespace pdsd {

struct TokenBatch {
  at::Tensor input_ids;     // [B, T] int64
  at::Tensor position_ids;  // [B, T] int64; restart at 0 for each packed sample
  // [B, T] int64 or undefined. Defined for packed rows: a token attends only to earlier tokens with
  // the same segment id (padding is a segment of its own). Undefined: plain causal attention, which
  // is exact for right-padded rows since no real token attends to a later pad.
  at::Tensor segment_ids;
  // Padding-free batches (CUDA, bf16/fp16): one row [1, T] of whole sequences laid end to end, with
  // their offsets cu_seqlens [S+1] (int32, on the device) and the longest length, so attention runs
  // as variable-length flash attention with no mask and no padding. segment_ids is set too (the mask
  // used where flash attention is not available). Undefined: not padding-free.
  at::Tensor cu_seqlens;
  int64_t max_seqlen = 0;
};

// How tokens attend, derived once per batch and handed to every layer.
struct AttentionLayout {
  at::Tensor mask;        // [B, 1, T, T] bool, true = may attend (packed rows without flash attention)
  at::Tensor cu_seqlens;  // variable-length flash attention (see TokenBatch)
  int64_t max_seqlen = 0;
  // Neither set: plain causal attention, exact for right-padded rows (no real token attends a later pad).
};

// Whether libtorch's flash attention (which padding-free batches need) runs on this device for this
// head size: CUDA compute capability 8.0 or newer, head_dim a multiple of 8 up to 256.
bool flash_attention_supported(at::Device device, int64_t head_dim);

class CausalLM {
 public:
  CausalLM(ModelConfig config, std::map<std::string, at::Tensor> parameters,
           at::ScalarType compute_dtype = at::kFloat);

  at::Tensor hidden_states(const TokenBatch& batch) const;
  at::Tensor logits(const TokenBatch& batch) const;  // [B, T, vocab], fp32; for tests and small models

  const ModelConfig& config() const { return config_; }
  const at::Tensor& lm_head_weight() const;
  std::map<std::string, at::Tensor>& parameters() { return parameters_; }
  const std::map<std::string, at::Tensor>& parameters() const { return parameters_; }
  at::ScalarType compute_dtype() const { return compute_dtype_; }

  // Casts every LoRA adapter to the compute dtype once, for the micro-batches of one optimizer step
  // (with grad mode on the casts stay in autograd's graph: each micro-batch's backward passes its
  // gradient through the same cast node into the fp32 adapter, as a cast per use would). Two
  // operators fewer per adapter and micro-batch each way; drop them before the optimizer updates
  // the adapters.
  void cast_lora_for_step();
  void drop_lora_casts();
  LoraAdapters& lora() { return lora_; }
  const LoraAdapters& lora() const { return lora_; }
  void set_training(bool training) { training_ = training; }
  bool training() const { return training_; }
  // Recompute each layer in backward instead of keeping its activations (while training).
  void set_gradient_checkpointing(bool on) { checkpointing_ = on; }
  bool gradient_checkpointing() const { return checkpointing_; }
  // Off: cast_lora_for_step does nothing and each use casts the fp32 adapter itself (CUDA graphs,
  // worker/model/layer_graphs.h, capture the casts and must not read per-step copies).
  void set_lora_casts(bool on) {
    lora_casts_ = on;
    if (!on) drop_lora_casts();
  }

  // Runs decoder layers instead of layer_forward / activation checkpointing when set: ZeRO-3
  // (worker/train/zero3_parameters.h) gathers each layer's weights around it.
  using LayerRunner = std::function<at::Tensor(int64_t layer, const at::Tensor& x, const at::Tensor& cos,
                                               const at::Tensor& sin, const AttentionLayout& attention)>;
  // `weights_train(layer)`: whether the layer's weights train, since the runner holds them (they are
  // not in parameters() between runs); first_trained_layer needs it.
  void set_layer_runner(LayerRunner runner, std::function<bool(int64_t layer)> weights_train);

  // The lowest decoder layer with anything that trains (a LoRA adapter, a weight that requires
  // grad); num_hidden_layers if none. With a frozen embedding, backward stops there.
  int64_t first_trained_layer() const;

  // Runs one decoder layer; public so that activation checkpointing and ZeRO-3 can wrap it.
  at::Tensor layer_forward(int64_t layer, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                           const AttentionLayout& attention) const;

 private:
  const at::Tensor& param(const std::string& name) const;
  at::Tensor linear(const at::Tensor& x, const std::string& module) const;
  std::vector<at::Tensor> fused_linear(const at::Tensor& x, const std::vector<std::string>& modules) const;
  // B A dropout(x), unscaled: the caller adds it times the adapter's scale in one operator (on a
  // host-bound model every operator counts).
  at::Tensor lora_delta(const at::Tensor& x, const LoraAdapter& adapter) const;
  at::Tensor rms_norm(const at::Tensor& x, const std::string& weight_name) const;
  at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const AttentionLayout& layout) const;

  ModelConfig config_;
  std::map<std::string, at::Tensor> parameters_;
  at::ScalarType compute_dtype_;
  at::Tensor inverse_frequencies_;
  LoraAdapters lora_;
  bool training_ = false;
  bool checkpointing_ = false;
  bool lora_casts_ = true;
  LayerRunner layer_runner_;
  std::function<bool(int64_t)> runner_weights_train_;
};

}  // namespace pdsd
