// A decoder-only chat model's shape, read from a Hugging Face config.json (Qwen2 / Llama 2 / Llama 3),
// and the exact list of weight tensors such a model has, named as transformers names them.
//
//   ModelConfig m = read_model_config("examples/tiny-qwen2");
//   for (const auto& w : m.expected_weights()) ...   // "model.layers.0.self_attn.q_proj.weight", {896, 896}
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pdsd {

struct WeightSpec {
  std::string name;
  std::vector<int64_t> shape;
};

struct ModelConfig {
  std::string model_type;  // "qwen2" | "llama"
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  // rope_parameters / rope_scaling: "default" or "llama3" (Llama 3.1+ frequency rescaling).
  std::string rope_type = "default";
  double rope_factor = 1.0;
  double rope_low_freq_factor = 1.0;
  double rope_high_freq_factor = 4.0;
  int64_t rope_original_max_position_embeddings = 8192;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v biases: always for Qwen2, `attention_bias` for Llama
  std::string dtype;            // "bfloat16", "float16", "float32" as saved

  std::vector<WeightSpec> expected_weights() const;
  int64_t parameter_count() const;
};

// Reads and checks <dir>/config.json; errors name the file and the key.
ModelConfig read_model_config(const std::string& model_dir);

// The decoder layer a Hugging Face weight or module name belongs to ("model.layers.<i>...."), or -1
// for one outside the layers (embeddings, final norm, lm_head).
int64_t decoder_layer_of(const std::string& name);

}  // namespace pdsd
