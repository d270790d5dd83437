#include "worker/model/causal_lm.h"

#include "common/error.h"
#include "worker/model/checkpointed_layer.h"
#include "worker/model/rotary.h"

#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/custom_function.h>

#ifdef PDSD_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

namespace pdsd {

bool flash_attention_supported(at::Device device, int64_t head_dim) {
  if (!device.is_cuda() || head_dim % 8 != 0 || head_dim > 256) return false;
#ifdef PDSD_HAVE_CUDA
  return at::cuda::getDeviceProperties(device.index())->major >= 8;
#else
  return false;
#endif
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// y = x · cat(W)ᵀ + b for weights that do not train (LoRA's and freeze's base): the concatenated
// weight exists only while its GEMM runs, in forward and again in backward, instead of being kept
// from forward to backward as a copy of the weights (most of a model, with no activation checkpointing).
struct FrozenFusedLinear : public torch::autograd::Function<FrozenFusedLinear> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, std::vector<at::Tensor> weights,
                            std::optional<at::Tensor> bias, at::ScalarType dtype) {
    ctx->save_for_backward(weights);  // the weights themselves, not a copy
    ctx->saved_data["dtype"] = static_cast<int64_t>(dtype);
    return at::linear(x, at::cat(weights).to(dtype), bias);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_output) {
    const auto dtype = static_cast<at::ScalarType>(ctx->saved_data["dtype"].toInt());
    at::Tensor grad_x = at::matmul(grad_output[0], at::cat(ctx->get_saved_variables()).to(dtype));
    return {grad_x, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

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

at::Tensor CausalLM::lora_delta(const at::Tensor& x, const LoraAdapter& adapter) const {
  at::Tensor input = training_ && adapter.dropout > 0 ? at::dropout(x, adapter.dropout, true) : x;
  const at::Tensor a = adapter.a_cast.defined() ? adapter.a_cast : adapter.a.to(compute_dtype_);
  const at::Tensor b = adapter.b_cast.defined() ? adapter.b_cast : adapter.b.to(compute_dtype_);
  return at::linear(at::linear(input, a), b);
}

void CausalLM::cast_lora_for_step() {
  if (!lora_casts_) return;
  for (auto& [module, adapter] : lora_) {
    adapter.a_cast = adapter.a.to(compute_dtype_);
    adapter.b_cast = adapter.b.to(compute_dtype_);
  }
}

void CausalLM::drop_lora_casts() {
  for (auto& [module, adapter] : lora_) {
    adapter.a_cast = at::Tensor();
    adapter.b_cast = at::Tensor();
  }
}

at::Tensor CausalLM::linear(const at::Tensor& x, const std::string& module) const {
  auto bias_it = parameters_.find(module + ".bias");
  std::optional<at::Tensor> bias;
  if (bias_it != parameters_.end()) bias = bias_it->second.to(compute_dtype_);
  at::Tensor y = at::linear(x, param(module + ".weight").to(compute_dtype_), bias);
  if (auto it = lora_.find(module); it != lora_.end()) y = at::add(y, lora_delta(x, it->second), it->second.scale);
  return y;
}

std::vector<at::Tensor> CausalLM::fused_linear(const at::Tensor& x, const std::vector<std::string>& modules) const {
  // Projections of the same input (q/k/v, gate/up) as one GEMM over the concatenated weights: one
  // kernel and one autograd node where there were several. Small models are bound by the host's
  // per-operator cost, not by the GPU, so fewer operators is what makes them faster.
  std::vector<at::Tensor> weights, biases;
  std::vector<int64_t> widths;
  for (const auto& m : modules) {
    weights.push_back(param(m + ".weight"));
    widths.push_back(weights.back().size(0));
    if (auto it = parameters_.find(m + ".bias"); it != parameters_.end()) biases.push_back(it->second);
  }
  PDSD_CHECK(biases.empty() || biases.size() == modules.size(), "fused projections: some have a bias, some not");
  std::optional<at::Tensor> bias;
  if (!biases.empty()) bias = at::cat(biases).to(compute_dtype_);
  bool frozen = !bias || !bias->requires_grad();
  for (const auto& w : weights) frozen = frozen && !w.requires_grad();
  at::Tensor y = frozen && at::GradMode::is_enabled() ? FrozenFusedLinear::apply(x, weights, bias, compute_dtype_)
                                                      : at::linear(x, at::cat(weights).to(compute_dtype_), bias);
  std::vector<at::Tensor> outs = y.split_with_sizes(widths, -1);
  for (size_t i = 0; i < modules.size(); ++i) {
    if (auto it = lora_.find(modules[i]); it != lora_.end()) outs[i] = at::add(outs[i], lora_delta(x, it->second), it->second.scale);
  }
  return outs;
}

at::Tensor CausalLM::rms_norm(const at::Tensor& x, const std::string& weight_name) const {
  if (x.is_cuda() && x.scalar_type() != at::kFloat) {
    // One fused kernel each way (libtorch's _fused_rms_norm), statistics in fp32. transformers rounds
    // the normalised value to bf16 before the weight multiplies it; this rounds once, after.
    return at::rms_norm(x, {x.size(-1)}, param(weight_name).to(compute_dtype_), config_.rms_norm_eps);
  }
  // In fp32 whatever the compute dtype, then back, as transformers' Qwen2RMSNorm / LlamaRMSNorm.
  at::Tensor x32 = x.to(at::kFloat);
  at::Tensor normed = x32 * at::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + config_.rms_norm_eps);
  return param(weight_name).to(compute_dtype_) * normed.to(x.scalar_type());
}

at::Tensor CausalLM::attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const AttentionLayout& layout) const {
  if (layout.cu_seqlens.defined()) {
    // q [T, heads, D], k/v [T, kv_heads, D]: flash attention takes grouped KV heads as they are.
    auto [out, lse, rng, unused, debug] = at::_flash_attention_forward(
        q, k, v, layout.cu_seqlens, layout.cu_seqlens, layout.max_seqlen, layout.max_seqlen, 0.0,
        /*is_causal=*/true, /*return_debug_mask=*/false);
    return out;
  }
  // q [B, heads, T, D], k/v [B, kv_heads, T, D].
  at::Tensor key = k, value = v;
  const int64_t heads = q.size(1), kv_heads = k.size(1);
  if (kv_heads != heads) {  // grouped-query attention: each KV head serves heads / kv_heads query heads
    key = k.repeat_interleave(heads / kv_heads, 1);
    value = v.repeat_interleave(heads / kv_heads, 1);
  }
  return layout.mask.defined() ? at::scaled_dot_product_attention(q, key, value, layout.mask, 0.0, /*is_causal=*/false)
                               : at::scaled_dot_product_attention(q, key, value, {}, 0.0, /*is_causal=*/true);
}

at::Tensor CausalLM::layer_forward(int64_t layer, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                   const AttentionLayout& layout) const {
  const std::string p = "model.layers." + std::to_string(layer) + ".";
  const int64_t batch = x.size(0), seq = x.size(1), heads = config_.num_attention_heads,
                kv_heads = config_.num_key_value_heads, head_dim = config_.head_dim;
  RotaryTables tables{cos, sin};

  at::Tensor h = rms_norm(x, p + "input_layernorm.weight");
  auto qkv = fused_linear(h, {p + "self_attn.q_proj", p + "self_attn.k_proj", p + "self_attn.v_proj"});
  // RoPE on q and k in one pass: [B, T, heads + kv_heads, D].
  at::Tensor qk = at::cat({qkv[0], qkv[1]}, -1).view({batch, seq, heads + kv_heads, head_dim});
  at::Tensor attn;
  if (layout.cu_seqlens.defined()) {  // one padding-free row: [T, heads, D] throughout, no transposes
    PDSD_CHECK(batch == 1, "variable-length attention takes one row of sequences, got ", batch, " rows");
    qk = apply_rotary(qk, tables, /*heads_axis=*/2).view({seq, heads + kv_heads, head_dim});
    attn = attention(qk.narrow(1, 0, heads), qk.narrow(1, heads, kv_heads), qkv[2].reshape({seq, kv_heads, head_dim}), layout)
               .view({batch, seq, heads * head_dim});
  } else {
    qk = apply_rotary(qk, tables, /*heads_axis=*/2).transpose(1, 2);  // [B, heads + kv_heads, T, D]
    at::Tensor v = qkv[2].reshape({batch, seq, kv_heads, head_dim}).transpose(1, 2);
    attn = attention(qk.narrow(1, 0, heads), qk.narrow(1, heads, kv_heads), v, layout)
               .transpose(1, 2)
               .reshape({batch, seq, heads * head_dim});
  }
  at::Tensor out = x + linear(attn, p + "self_attn.o_proj");

  h = rms_norm(out, p + "post_attention_layernorm.weight");
  auto gate_up = fused_linear(h, {p + "mlp.gate_proj", p + "mlp.up_proj"});
  at::Tensor mlp = linear(at::silu(gate_up[0]) * gate_up[1], p + "mlp.down_proj");
  return out + mlp;
}

at::Tensor CausalLM::hidden_states(const TokenBatch& batch) const {
  PDSD_CHECK(batch.input_ids.dim() == 2 && batch.position_ids.sizes() == batch.input_ids.sizes(),
             "input_ids and position_ids must both be [batch, seq]");
  at::Tensor x = at::embedding(param("model.embed_tokens.weight").to(compute_dtype_), batch.input_ids);
  RotaryTables tables = rotary_tables(inverse_frequencies_, batch.position_ids, compute_dtype_);
  AttentionLayout layout;
  if (batch.cu_seqlens.defined() && x.is_cuda() && compute_dtype_ != at::kFloat) {
    layout.cu_seqlens = batch.cu_seqlens;
    layout.max_seqlen = batch.max_seqlen;
  } else if (batch.segment_ids.defined()) {  // packed rows (or a padding-free row) without flash attention
    const int64_t seq = batch.input_ids.size(1);
    at::Tensor same = batch.segment_ids.unsqueeze(2) == batch.segment_ids.unsqueeze(1);  // [B, T, T]
    at::Tensor causal = at::ones({seq, seq}, at::TensorOptions().dtype(at::kBool).device(x.device())).tril();
    layout.mask = same.logical_and(causal).unsqueeze(1);  // [B, 1, T, T]; true = may attend
  }
  const bool backward = training_ && at::GradMode::is_enabled();
  // With a frozen embedding (LoRA, freeze) backward need not reach below the first layer that trains:
  // the layers under it run without a graph (as in transformers without checkpointing; with it,
  // transformers makes the embedding output need a gradient and every layer gets one), and are
  // neither checkpointed nor recomputed. The input of that first layer is then made to need a gradient where a layer is
  // checkpointed (autograd reaches its backward, and the adapters inside, only through its input)
  // or run by a layer runner (ZeRO-3 orders its backward by its input's gradient).
  const int64_t first_trained = backward && !x.requires_grad() ? first_trained_layer() : 0;
  for (int64_t layer = 0; layer < config_.num_hidden_layers; ++layer) {
    if (layer == first_trained && backward && (checkpointing_ || layer_runner_) && !x.requires_grad()) {
      x = x.detach().requires_grad_(true);
    }
    const bool checkpoint = checkpointing_ && backward && layer >= first_trained;
    x = layer_runner_ ? layer_runner_(layer, x, tables.cos, tables.sin, layout)
        : checkpoint  ? checkpointed_layer_forward(*this, layer, x, tables.cos, tables.sin, layout)
                   : layer_forward(layer, x, tables.cos, tables.sin, layout);
  }
  return rms_norm(x, "model.norm.weight");
}

void CausalLM::set_layer_runner(LayerRunner runner, std::function<bool(int64_t layer)> weights_train) {
  PDSD_CHECK(!runner || weights_train, "CausalLM: a layer runner needs to say which of its layers' weights train");
  layer_runner_ = std::move(runner);
  runner_weights_train_ = std::move(weights_train);
}

int64_t CausalLM::first_trained_layer() const {
  const int64_t layers = config_.num_hidden_layers;
  const auto layer_of = [layers](const std::string& name) {  // layers: not a layer's
    const int64_t layer = decoder_layer_of(name);
    return layer < 0 ? layers : layer;
  };
  int64_t first = layers;
  for (const auto& [module, adapter] : lora_) first = std::min(first, layer_of(module));
  for (const auto& [name, t] : parameters_) {
    if (t.defined() && t.requires_grad()) first = std::min(first, layer_of(name));
  }
  for (int64_t layer = 0; runner_weights_train_ && layer < first; ++layer) {
    if (runner_weights_train_(layer)) return layer;
  }
  return first;
}

at::Tensor CausalLM::logits(const TokenBatch& batch) const {
  return at::linear(hidden_states(batch), lm_head_weight().to(compute_dtype_)).to(at::kFloat);
}

}  // namespace pdsd
