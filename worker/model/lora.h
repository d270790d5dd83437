// LoRA adapters as PEFT defines them: for a target linear layer W (out × in), trainable A (r × in)
// and B (out × r); the layer computes W x + b + scale · B A dropout(x), scale = alpha / r.
// A starts Kaiming-uniform (a = √5, like nn.Linear and PEFT), B at zero, so training starts from the
// base model exactly. Names follow PEFT's adapter files: base_model.model.<module>.lora_A.weight.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <string>
#include <vector>

#include "worker/model_config.h"

namespace pdsd {

struct LoraAdapter {
  at::Tensor a;  // [r, in]
  at::Tensor b;  // [out, r]
  double scale = 1.0;
  double dropout = 0.0;
  // a and b in the compute dtype, cast once for a whole optimizer step (CausalLM::cast_lora_for_step)
  // and used by every micro-batch; undefined: cast at each use.
  at::Tensor a_cast, b_cast;
};

// module name (e.g. "model.layers.3.self_attn.q_proj") → adapter
using LoraAdapters = std::map<std::string, LoraAdapter>;

struct LoraSettings {
  int64_t rank = 8;
  double alpha = 16;
  double dropout = 0.0;
  std::vector<std::string> targets;  // "all" or module kinds such as q_proj, v_proj
};

// The linear modules of the model that `targets` selects ("all": every linear layer except lm_head,
// as LLaMA-Factory's `lora_target: all`). Throws InputError for a name the model does not have.
std::vector<std::string> lora_target_modules(const ModelConfig& config, const std::vector<std::string>& targets);

// Fresh adapters (fp32, requires_grad) for the selected modules, initialised from `generator_seed`.
LoraAdapters make_lora_adapters(const ModelConfig& config, const LoraSettings& settings, uint64_t seed);

// W + scale · B A for every adapted module, written into the given parameters (for export).
void merge_lora(std::map<std::string, at::Tensor>& parameters, const LoraAdapters& adapters);

}  // namespace pdsd
