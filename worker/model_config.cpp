#include "worker/model_config.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "common/error.h"

namespace pdsd {

namespace {

int64_t required_int(const nlohmann::json& j, const std::string& key, const std::string& file) {
  if (!j.contains(key)) throw InputError(str(file, ": missing key \"", key, "\""));
  if (!j[key].is_number_integer() || j[key].get<int64_t>() <= 0) {
    throw InputError(str(file, ": key \"", key, "\" must be a positive integer, got ", j[key].dump()));
  }
  return j[key].get<int64_t>();
}

}  // namespace

ModelConfig read_model_config(const std::string& model_dir) {
  std::string file = (std::filesystem::path(model_dir) / "config.json").string();
  std::ifstream in(file);
  if (!in) throw InputError(str(file, ": cannot open"));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(str(file, ": not valid JSON: ", e.what()));
  }
  ModelConfig m;
  m.model_type = j.value("model_type", "");
  if (m.model_type != "qwen2" && m.model_type != "llama") {
    throw InputError(str(file, ": model_type \"", m.model_type, "\" is not supported (qwen2, llama)"));
  }
  m.hidden_size = required_int(j, "hidden_size", file);
  m.intermediate_size = required_int(j, "intermediate_size", file);
  m.num_hidden_layers = required_int(j, "num_hidden_layers", file);
  m.num_attention_heads = required_int(j, "num_attention_heads", file);
  m.num_key_value_heads = j.contains("num_key_value_heads") ? required_int(j, "num_key_value_heads", file)
                                                            : m.num_attention_heads;
  m.vocab_size = required_int(j, "vocab_size", file);
  m.max_position_embeddings = j.value("max_position_embeddings", int64_t{0});
  m.head_dim = j.contains("head_dim") && !j["head_dim"].is_null() ? required_int(j, "head_dim", file)
                                                                  : m.hidden_size / m.num_attention_heads;
  if (m.num_attention_heads % m.num_key_value_heads != 0) {
    throw InputError(str(file, ": num_attention_heads (", m.num_attention_heads,
                         ") is not a multiple of num_key_value_heads (", m.num_key_value_heads, ")"));
  }
  m.rms_norm_eps = j.value("rms_norm_eps", 1e-6);
  // transformers 5 keeps rope_theta and the scaling inside rope_parameters; older files have
  // rope_theta at the top level and the scaling in rope_scaling.
  m.rope_theta = j.value("rope_theta", m.rope_theta);
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    if (!j.contains(key) || j[key].is_null()) continue;
    const auto& r = j[key];
    if (!r.is_object()) throw InputError(str(file, ": \"", key, "\" must be an object"));
    m.rope_theta = r.value("rope_theta", m.rope_theta);
    m.rope_type = r.value("rope_type", r.value("type", std::string("default")));
    if (m.rope_type != "default" && m.rope_type != "llama3") {
      throw InputError(str(file, ": ", key, ".rope_type \"", m.rope_type, "\" is not supported (default, llama3)"));
    }
    if (m.rope_type == "llama3") {
      m.rope_factor = r.value("factor", m.rope_factor);
      m.rope_low_freq_factor = r.value("low_freq_factor", m.rope_low_freq_factor);
      m.rope_high_freq_factor = r.value("high_freq_factor", m.rope_high_freq_factor);
      m.rope_original_max_position_embeddings =
          r.value("original_max_position_embeddings", m.rope_original_max_position_embeddings);
    }
  }
  m.tie_word_embeddings = j.value("tie_word_embeddings", false);
  m.attention_bias = m.model_type == "qwen2" ? true : j.value("attention_bias", false);
  m.dtype = j.contains("dtype") ? j.value("dtype", "") : j.value("torch_dtype", "float32");
  return m;
}

std::vector<WeightSpec> ModelConfig::expected_weights() const {
  const int64_t h = hidden_size, q = num_attention_heads * head_dim, kv = num_key_value_heads * head_dim;
  std::vector<WeightSpec> w{{"model.embed_tokens.weight", {vocab_size, h}}};
  for (int64_t i = 0; i < num_hidden_layers; ++i) {
    std::string p = "model.layers." + std::to_string(i) + ".";
    w.push_back({p + "input_layernorm.weight", {h}});
    w.push_back({p + "self_attn.q_proj.weight", {q, h}});
    w.push_back({p + "self_attn.k_proj.weight", {kv, h}});
    w.push_back({p + "self_attn.v_proj.weight", {kv, h}});
    if (attention_bias) {
      w.push_back({p + "self_attn.q_proj.bias", {q}});
      w.push_back({p + "self_attn.k_proj.bias", {kv}});
      w.push_back({p + "self_attn.v_proj.bias", {kv}});
    }
    w.push_back({p + "self_attn.o_proj.weight", {h, q}});
    if (attention_bias && model_type == "llama") w.push_back({p + "self_attn.o_proj.bias", {h}});
    w.push_back({p + "post_attention_layernorm.weight", {h}});
    w.push_back({p + "mlp.gate_proj.weight", {intermediate_size, h}});
    w.push_back({p + "mlp.up_proj.weight", {intermediate_size, h}});
    w.push_back({p + "mlp.down_proj.weight", {h, intermediate_size}});
  }
  w.push_back({"model.norm.weight", {h}});
  if (!tie_word_embeddings) w.push_back({"lm_head.weight", {vocab_size, h}});
  return w;
}

int64_t ModelConfig::parameter_count() const {
  int64_t total = 0;
  for (const auto& spec : expected_weights()) {
    int64_t n = 1;
    for (int64_t d : spec.shape) n *= d;
    total += n;
  }
  return total;
}

int64_t decoder_layer_of(const std::string& name) {
  const std::string prefix = "model.layers.";
  if (name.rfind(prefix, 0) != 0) return -1;
  return std::stoll(name.substr(prefix.size(), name.find('.', prefix.size()) - prefix.size()));
}

}  // namespace pdsd
