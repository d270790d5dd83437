#include "worker/model/causal_lm.h"

#include "common/error.h"
#include "worker/model/checkpointed_layer.h"
#include "worker/model/rotary.h"

#include <ATen/core/grad_mode.h>

namespace pdsd {

CausalLM::CausalLM(ModelConfig config, std::map<std::string, at::Tensor> parameters, at::ScalarType compute_dtype)
    : config_(std::move(config)),
      parameters_(std::move(parameters)),
      compute_dtype_(compute_dtype),
      inverse_frequencies_(rope_inverse_frequencies(config_)) {
  for (const auto& spec : config_.expected_weights()) {
    PDSD_CHECK(parameters_.count(spec.name), "CausalLM: parameter '", spec.name, "' missing");
  }
}

const at::Tensor& CausalLM::param(const std::string& name) const {
  auto it = parameters_.find(name);
  PDSD_CHECK(it != parameters_.end(), "CausalLM: no parameter '", name, "'");
  return it->second;
}

const at::Tensor& CausalLM::lm_head_weight() const {
  return param(config_.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
}

at::Tensor CausalLM::linear(const at::Tensor& x, const std::string& module) const {
  auto bias_it = parameters_.find(module + ".bias");
  std::optional<at::Tensor> bias;
  if (bias_it != parameters_.end()) bias = bias_it->second.to(compute_dtype_);
  at::Tensor y = at::linear(x, param(module + ".weight").to(compute_dtype_), bias);
  if (auto it = lora_.find(module); it != lora_.end()) {
    const LoraAdapter& adapter = it->second;
    at::Tensor input = training_ && adapter.dropout > 0 ? at::dropout(x, adapter.dropout, true) : x;
    y = y + at::linear(at::linear(input, adapter.a.to(compute_dtype_)), adapter.b.to(compute_dtype_)) * adapter.scale;
  }
  return y;
}

at::Tensor CausalLM::rms_norm(const at::Tensor& x, const std::string& weight_name) const {
  // In fp32 whatever the compute dtype, then back, as transformers' Qwen2RMSNorm / LlamaRMSNorm.
  at::Tensor x32 = x.to(at::kFloat);
  at::Tensor normed = x32 * at::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + config_.rms_norm_eps);
  return param(weight_name).to(compute_dtype_) * normed.to(x.scalar_type());
}

at::Tensor CausalLM::layer_forward(int64_t layer, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                   const at::Tensor& attention_mask) const {
  const std::string p = "model.layers." + std::to_string(layer) + ".";
  const int64_t batch = x.size(0), seq = x.size(1), heads = config_.num_attention_heads,
                kv_heads = config_.num_key_value_heads, head_dim = config_.head_dim;
  RotaryTables tables{cos, sin};

  at::Tensor h = rms_norm(x, p + "input_layernorm.weight");
  at::Tensor q = linear(h, p + "self_attn.q_proj").view({batch, seq, heads, head_dim}).transpose(1, 2);
  at::Tensor k = linear(h, p + "self_attn.k_proj").view({batch, seq, kv_heads, head_dim}).transpose(1, 2);
  at::Tensor v = linear(h, p + "self_attn.v_proj").view({batch, seq, kv_heads, head_dim}).transpose(1, 2);
  q = apply_rotary(q, tables);
  k = apply_rotary(k, tables);
  if (kv_heads != heads) {  // grouped-query attention: each KV head serves heads / kv_heads query heads
    k = k.repeat_interleave(heads / kv_heads, 1);
    v = v.repeat_interleave(heads / kv_heads, 1);
  }
  at::Tensor attn = attention_mask.defined()
                        ? at::scaled_dot_product_attention(q, k, v, attention_mask, 0.0, /*is_causal=*/false)
                        : at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
  attn = attn.transpose(1, 2).reshape({batch, seq, heads * head_dim});
  at::Tensor out = x + linear(attn, p + "self_attn.o_proj");

  h = rms_norm(out, p + "post_attention_layernorm.weight");
  at::Tensor mlp = linear(at::silu(linear(h, p + "mlp.gate_proj")) * linear(h, p + "mlp.up_proj"), p + "mlp.down_proj");
  return out + mlp;
}

at::Tensor CausalLM::hidden_states(const TokenBatch& batch) const {
  PDSD_CHECK(batch.input_ids.dim() == 2 && batch.position_ids.sizes() == batch.input_ids.sizes(),
             "input_ids and position_ids must both be [batch, seq]");
  at::Tensor x = at::embedding(param("model.embed_tokens.weight").to(compute_dtype_), batch.input_ids);
  RotaryTables tables = rotary_tables(inverse_frequencies_, batch.position_ids, compute_dtype_);
  at::Tensor mask;
  if (batch.segment_ids.defined()) {
    const int64_t seq = batch.input_ids.size(1);
    at::Tensor same = batch.segment_ids.unsqueeze(2) == batch.segment_ids.unsqueeze(1);  // [B, T, T]
    at::Tensor causal = at::ones({seq, seq}, at::TensorOptions().dtype(at::kBool).device(x.device())).tril();
    mask = same.logical_and(causal).unsqueeze(1);  // [B, 1, T, T]; true = may attend
  }
  if ((checkpointing_ || layer_runner_) && training_ && at::GradMode::is_enabled() && !x.requires_grad()) {
    // With a frozen embedding (LoRA) nothing entering the first checkpointed layer needs a gradient,
    // so autograd would not call its backward and the adapters inside would get none.
    x = x.detach().requires_grad_(true);
  }
  for (int64_t layer = 0; layer < config_.num_hidden_layers; ++layer) {
    const bool checkpoint = checkpointing_ && training_ && at::GradMode::is_enabled();
    x = layer_runner_ ? layer_runner_(layer, x, tables.cos, tables.sin, mask)
        : checkpoint  ? checkpointed_layer_forward(*this, layer, x, tables.cos, tables.sin, mask)
                   : layer_forward(layer, x, tables.cos, tables.sin, mask);
  }
  return rms_norm(x, "model.norm.weight");
}

at::Tensor CausalLM::logits(const TokenBatch& batch) const {
  return at::linear(hidden_states(batch), lm_head_weight().to(compute_dtype_)).to(at::kFloat);
}

}  // namespace pdsd
