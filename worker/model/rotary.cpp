#include "worker/model/rotary.h"

#include <cmath>

namespace pdsd {

at::Tensor rope_inverse_frequencies(const ModelConfig& config) {
  const int64_t dim = config.head_dim;
  at::Tensor exponents = at::arange(0, dim, 2, at::TensorOptions().dtype(at::kLong)).to(at::kFloat) / static_cast<double>(dim);
  at::Tensor inv_freq = 1.0 / at::pow(config.rope_theta, exponents);
  if (config.rope_type != "llama3") return inv_freq;
  // Llama 3.1: long wavelengths are divided by `factor`, short ones kept, the band between blended.
  const double old_context = static_cast<double>(config.rope_original_max_position_embeddings);
  const double low_freq_wavelen = old_context / config.rope_low_freq_factor;
  const double high_freq_wavelen = old_context / config.rope_high_freq_factor;
  at::Tensor wavelen = 2 * M_PI / inv_freq;
  at::Tensor scaled = at::where(wavelen > low_freq_wavelen, inv_freq / config.rope_factor, inv_freq);
  at::Tensor smooth = (old_context / wavelen - config.rope_low_freq_factor) /
                      (config.rope_high_freq_factor - config.rope_low_freq_factor);
  at::Tensor smoothed = (1 - smooth) * scaled / config.rope_factor + smooth * scaled;
  at::Tensor medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
  return at::where(medium, smoothed, scaled);
}

RotaryTables rotary_tables(const at::Tensor& inverse_frequencies, const at::Tensor& position_ids, at::ScalarType dtype) {
  at::Tensor inv = inverse_frequencies.to(position_ids.device());
  at::Tensor freqs = position_ids.to(at::kFloat).unsqueeze(-1) * inv.view({1, 1, -1});  // [B, T, D/2]
  at::Tensor emb = at::cat({freqs, freqs}, -1);
  // The first half of sin negated once per batch, so that each layer's rotate_half is a flip.
  at::Tensor sin = emb.sin();
  sin.narrow(-1, 0, sin.size(-1) / 2).neg_();
  return {emb.cos().to(dtype), sin.to(dtype)};
}

at::Tensor apply_rotary(const at::Tensor& x, const RotaryTables& tables, int64_t heads_axis) {
  // rotate_half(x) * sin = [-x2, x1] * [s, s] = [x2, x1] * [-s, s]: the halves swapped (one flip)
  // times the signed table, then one fused multiply-add.
  const int64_t half = x.size(-1) / 2;
  at::Tensor swapped = x.unflatten(-1, {2, half}).flip(-2).flatten(-2);
  at::Tensor cos = tables.cos.unsqueeze(heads_axis), sin = tables.sin.unsqueeze(heads_axis);  // broadcast over heads
  return at::addcmul(x * cos, swapped, sin);
}

}  // namespace pdsd
