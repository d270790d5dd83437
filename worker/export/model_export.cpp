#include "worker/export/model_export.h"

#include <ATen/core/grad_mode.h>

#include <filesystem>
#include <cstdio>
#include <fstream>
#include <regex>
#include <set>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "worker/export/safetensors_writer.h"

namespace fs = std::filesystem;

namespace pdsd {

namespace {
// The name config.json's "dtype" gets: the one asked for, else the source's, else float32.
std::string saved_dtype_name(const ModelConfig& config, const std::string& dtype) {
  return dtype.empty() ? (config.dtype.empty() ? "float32" : config.dtype) : dtype;
}
}  // namespace

at::ScalarType export_dtype(const ModelConfig& config, const std::string& dtype) {
  const std::string name = saved_dtype_name(config, dtype);
  if (name == "bfloat16") return at::kBFloat16;
  if (name == "float16") return at::kHalf;
  if (name == "float32") return at::kFloat;
  throw InputError(str("export dtype '", name, "' is not one of float32, bfloat16, float16"));
}

std::vector<std::string> export_hf_model(const CausalLM& model, const std::string& source_model_dir,
                                         const std::string& out_dir, const std::string& dtype, int64_t max_shard_bytes) {
  at::NoGradGuard no_grad;
  PDSD_CHECK(max_shard_bytes > 0, "export: the maximum shard size must be positive, got ", max_shard_bytes);
  fs::create_directories(out_dir);
  const ModelConfig& config = model.config();
  const std::string saved_dtype = saved_dtype_name(config, dtype);
  const at::ScalarType type = export_dtype(config, dtype);
  // LoRA merges in fp32; without adapters each weight is only rounded to the saved dtype once.
  std::map<std::string, at::Tensor> params;
  const bool merges = !model.lora().empty();
  for (const auto& [name, t] : model.parameters()) params[name] = merges ? t.detach().to(at::kFloat) : t.detach();
  merge_lora(params, model.lora());
  // Shards as huggingface_hub's split_torch_state_dict_into_shards cuts them: in order, a new shard
  // when the next tensor would pass the limit, a tensor larger than the limit alone in its own.
  std::vector<std::vector<std::pair<std::string, at::Tensor>>> shards(1);
  int64_t shard_bytes = 0, total_bytes = 0;
  for (const auto& spec : config.expected_weights()) {
    at::Tensor t = params.at(spec.name).to(type);
    const int64_t bytes = static_cast<int64_t>(t.nbytes());
    if (!shards.back().empty() && (shard_bytes + bytes > max_shard_bytes || bytes > max_shard_bytes)) {
      shards.emplace_back(), shard_bytes = 0;
    }
    shards.back().emplace_back(spec.name, t);
    shard_bytes += bytes, total_bytes += bytes;
    if (bytes > max_shard_bytes) shards.emplace_back(), shard_bytes = 0;
  }
  if (shards.back().empty()) shards.pop_back();
  // Weight files of an earlier export here would confuse loaders (an index beside a single file).
  static const std::regex weight_file("model(-\\d{5}-of-\\d{5})?\\.safetensors|model\\.safetensors\\.index\\.json");
  for (const auto& entry : fs::directory_iterator(out_dir)) {
    if (entry.is_regular_file() && std::regex_match(entry.path().filename().string(), weight_file)) fs::remove(entry.path());
  }
  std::vector<std::string> files;
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    const std::string file = shards.size() == 1 ? "model.safetensors" : name;
    write_safetensors((fs::path(out_dir) / file).string(), shards[i]);
    for (const auto& [tensor, t] : shards[i]) weight_map[tensor] = file;
    files.push_back(file);
  }
  if (shards.size() > 1) {
    nlohmann::ordered_json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
    std::ofstream(fs::path(out_dir) / "model.safetensors.index.json") << index.dump(2) << "\n";
  }

  nlohmann::json cfg;
  {
    std::ifstream in(fs::path(source_model_dir) / "config.json");
    cfg = nlohmann::json::parse(in);
  }
  cfg["dtype"] = saved_dtype;
  std::ofstream(fs::path(out_dir) / "config.json") << cfg.dump(2) << "\n";
  for (const char* name : {"generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                           "tokenizer.model", "vocab.json", "merges.txt"}) {
    fs::path src = fs::path(source_model_dir) / name;
    if (fs::exists(src)) fs::copy_file(src, fs::path(out_dir) / name, fs::copy_options::overwrite_existing);
  }
  return files;
}

void export_peft_adapter(const CausalLM& model, const LoraSettings& settings, const std::string& base_model_path,
                         const std::string& out_dir) {
  PDSD_CHECK(!model.lora().empty(), "export_peft_adapter: the model has no LoRA adapters");
  fs::create_directories(out_dir);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  std::set<std::string> kinds;
  for (const auto& [module, adapter] : model.lora()) {
    tensors.emplace_back("base_model.model." + module + ".lora_A.weight", adapter.a.detach().to(at::kFloat));
    tensors.emplace_back("base_model.model." + module + ".lora_B.weight", adapter.b.detach().to(at::kFloat));
    kinds.insert(module.substr(module.rfind('.') + 1));
  }
  write_safetensors((fs::path(out_dir) / "adapter_model.safetensors").string(), tensors);
  nlohmann::json cfg = {{"peft_type", "LORA"},
                        {"task_type", "CAUSAL_LM"},
                        {"base_model_name_or_path", base_model_path},
                        {"r", settings.rank},
                        {"lora_alpha", settings.alpha},
                        {"lora_dropout", settings.dropout},
                        {"target_modules", std::vector<std::string>(kinds.begin(), kinds.end())},
                        {"bias", "none"},
                        {"fan_in_fan_out", false},
                        {"inference_mode", true},
                        {"use_rslora", false},
                        {"use_dora", false},
                        {"init_lora_weights", true},
                        {"modules_to_save", nullptr}};
  std::ofstream(fs::path(out_dir) / "adapter_config.json") << cfg.dump(2) << "\n";
}

}  // namespace pdsd
