#include "worker/export/export_command.h"

#include <ATen/core/grad_mode.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/log.h"
#include "worker/export/model_export.h"
#include "worker/model_weights.h"
#include "worker/safetensors_file.h"
#include "worker/train/checkpoint.h"
#include "worker/train/checkpoint_manifest.h"

namespace fs = std::filesystem;

namespace pdsd {

namespace {

bool is_checkpoint(const std::string& dir) { return !dir.empty() && fs::exists(fs::path(dir) / "trainer_state.json"); }

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw InputError(pdsd::str(path.string(), ": cannot open"));
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(pdsd::str(path.string(), ": not valid JSON (", e.what(), ")"));
  }
}

LoraSettings lora_settings_of(const nlohmann::json& j, bool peft) {
  LoraSettings s;
  s.rank = j.at("r").get<int64_t>();
  s.alpha = j.at("lora_alpha").get<double>();
  s.dropout = j.value("lora_dropout", 0.0);
  const nlohmann::json& t = j.at(peft ? "target_modules" : "target");
  s.targets = t.is_string() ? std::vector<std::string>{t.get<std::string>()} : t.get<std::vector<std::string>>();
  return s;
}

}  // namespace

std::string run_export(const ExportOptions& o) {
  at::NoGradGuard no_grad;
  // Which input: a pdsd checkpoint (named by any of the three keys) or a PEFT adapter dir.
  std::string checkpoint = o.checkpoint;
  if (checkpoint.empty() && is_checkpoint(o.adapter_name_or_path)) checkpoint = o.adapter_name_or_path;
  if (checkpoint.empty() && is_checkpoint(o.model_name_or_path)) checkpoint = o.model_name_or_path;
  const bool peft_input = checkpoint.empty() && !o.adapter_name_or_path.empty();
  nlohmann::json state;
  if (!checkpoint.empty()) {
    if (!fs::is_directory(checkpoint)) throw InputError(pdsd::str("export: checkpoint '", checkpoint, "' does not exist"));
    if (std::string why = validate_checkpoint(checkpoint); !why.empty()) throw InputError(pdsd::str("export: ", why));
    state = read_trainer_state(checkpoint);
  }
  std::string base = o.model_name_or_path;
  if (base.empty() || base == checkpoint) base = state.is_null() ? "" : state.value("base_model", "");
  if (base.empty() && peft_input) base = read_json(fs::path(o.adapter_name_or_path) / "adapter_config.json").value("base_model_name_or_path", "");
  if (base.empty() || !fs::exists(fs::path(base) / "config.json")) {
    throw InputError(pdsd::str("export: model_name_or_path '", base, "' is not a Hugging Face model dir (no config.json)"));
  }
  const std::string type = state.is_null() ? (peft_input ? "lora" : "full") : state.value("finetuning_type", "");
  if (!o.finetuning_type.empty() && o.finetuning_type != type) {
    throw InputError(pdsd::str("export: finetuning_type is ", o.finetuning_type, " but ", checkpoint, " was saved by a ", type, " run"));
  }
  if (o.export_adapter && type != "lora") throw InputError("export: export_adapter needs a LoRA checkpoint or adapter");

  ModelConfig config = read_model_config(base);
  ModelWeights weights = load_model_weights(base, config);
  std::map<std::string, at::Tensor> params;
  for (const auto& [name, view] : weights.tensors) params[name] = view.to(at::kFloat, false, /*copy=*/true);
  CausalLM model(config, params);
  LoraSettings lora;
  if (type == "lora") {
    lora = peft_input ? lora_settings_of(read_json(fs::path(o.adapter_name_or_path) / "adapter_config.json"), true)
                      : lora_settings_of(state.at("lora"), false);
    model.lora() = make_lora_adapters(config, lora, /*seed=*/0);
  }
  if (!checkpoint.empty()) {
    // The checkpoint's trainable tensors, by the names training gave them.
    std::vector<TrainableParameter> trainable;
    for (const auto& p : state.at("layout").at("params")) {
      const std::string name = p.at("name").get<std::string>();
      const size_t dot = name.rfind('.');
      const std::string module = name.substr(0, dot), part = name.substr(dot + 1);
      at::Tensor t;
      if ((part == "lora_A" || part == "lora_B") && model.lora().count(module)) {
        t = part == "lora_A" ? model.lora().at(module).a : model.lora().at(module).b;
      } else if (model.parameters().count(name)) {
        t = model.parameters().at(name);
      } else {
        throw InputError(pdsd::str(checkpoint, "/trainer_state.json: tensor '", name, "' is not in ", base));
      }
      trainable.push_back({name, t, true});
    }
    load_checkpoint_weights(checkpoint, trainable);
  } else if (peft_input) {
    SafetensorsFile file((fs::path(o.adapter_name_or_path) / "adapter_model.safetensors").string());
    size_t loaded = 0;
    for (const auto& e : file.entries()) {
      // PEFT names: base_model.model.<module>.lora_A.weight
      const std::string prefix = "base_model.model.", suffix = ".weight";
      std::string name = e.name.rfind(prefix, 0) == 0 ? e.name.substr(prefix.size()) : e.name;
      if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        name.resize(name.size() - suffix.size());
      }
      const size_t dot = name.rfind('.');
      auto it = model.lora().find(name.substr(0, dot));
      if (it == model.lora().end() || e.dtype != "F32" && e.dtype != "BF16" && e.dtype != "F16") {
        throw InputError(pdsd::str(file.path(), ": tensor '", e.name, "' is not a LoRA weight of ", base));
      }
      const at::ScalarType dt = e.dtype == "F32" ? at::kFloat : e.dtype == "BF16" ? at::kBFloat16 : at::kHalf;
      at::Tensor src = at::from_blob(const_cast<std::byte*>(file.data(e)), e.shape, dt);
      at::Tensor& dst = name.substr(dot + 1) == "lora_A" ? it->second.a : it->second.b;
      if (src.sizes() != dst.sizes()) {
        throw InputError(pdsd::str(file.path(), ": tensor '", e.name, "' has shape ", src.sizes(), ", the model needs ", dst.sizes()));
      }
      dst.detach().copy_(src);
      ++loaded;
    }
    if (loaded != 2 * model.lora().size()) {
      throw InputError(pdsd::str(file.path(), ": ", loaded, " LoRA tensors, adapter_config.json implies ", 2 * model.lora().size()));
    }
  }
  const std::string from = checkpoint.empty() ? o.adapter_name_or_path : checkpoint;
  if (o.export_adapter) {
    export_peft_adapter(model, lora, fs::absolute(base).string(), o.export_dir);
    return pdsd::str("wrote a PEFT adapter from ", from, " to ", o.export_dir);
  }
  const auto files = export_hf_model(model, base, o.export_dir, o.infer_dtype == "auto" ? "" : o.infer_dtype,
                                     o.max_shard_bytes());
  return pdsd::str("wrote a Hugging Face model dir", type == "lora" ? " (LoRA merged)" : "", " from ",
             from.empty() ? base : from, " to ", o.export_dir, ": ", files.size(), " safetensors file",
             files.size() == 1 ? "" : "s");
}

}  // namespace pdsd
