// Checks that involve more than one key, or the files a key points at. They run after parsing and
// before any process starts, so a bad job fails in a second instead of after the workers have loaded.
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "common/did_you_mean.h"
#include "common/job_config.h"
#include "common/log.h"

namespace fs = std::filesystem;

namespace pdsd {

namespace {

ConfigOrigin origin_of(const JobConfig& c, const std::string& key) {
  auto it = c.origins.find(key);
  return it != c.origins.end() ? it->second : ConfigOrigin{c.source_file, 0};
}

[[noreturn]] void fail(const JobConfig& c, const std::string& key, const std::string& message) {
  throw ConfigError(str(origin_of(c, key).describe(), ": key '", key, "': ", message));
}

bool given(const JobConfig& c, const std::string& key) { return c.origins.count(key) > 0; }

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::string item;
  for (char ch : text + ",") {
    if (ch == ',') {
      if (!item.empty()) out.push_back(item);
      item.clear();
    } else if (ch != ' ') {
      item += ch;
    }
  }
  return out;
}

void check_required(const JobConfig& c) {
  if (c.model_name_or_path.empty()) fail(c, "model_name_or_path", "is required: a local Hugging Face model dir");
  if (c.dataset.empty()) fail(c, "dataset", "is required: names from <dataset_dir>/dataset_info.json");
  if (c.output_dir.empty()) fail(c, "output_dir", "is required: where checkpoints and the final model go");
}

void check_combinations(const JobConfig& c) {
  if (!c.do_train) fail(c, "do_train", "must be true: pdsd trains");
  if (c.bf16 && c.fp16) fail(c, "fp16", "bf16 and fp16 are both true; choose one");
  if (c.warmup_steps > 0 && c.warmup_ratio > 0) {
    fail(c, "warmup_ratio", str("warmup_steps (", c.warmup_steps, ") is also set; give one of the two"));
  }
  if (c.max_steps == 0) fail(c, "max_steps", "must be -1 (use num_train_epochs) or a positive number of steps");
  if (c.save_total_limit == 0) fail(c, "save_total_limit", "must be -1 (keep all) or at least 1");
  if (c.val_size >= 1 && std::floor(c.val_size) != c.val_size) {
    fail(c, "val_size", str("must be a fraction below 1 or a whole number of samples, got ", c.val_size));
  }
  if (c.finetuning_type == "freeze" && c.freeze_trainable_layers == 0) {
    fail(c, "freeze_trainable_layers", "must not be 0 with finetuning_type: freeze (nothing would train)");
  }
  if (!c.resume_from_checkpoint.empty() && c.overwrite_output_dir) {
    fail(c, "overwrite_output_dir",
         "is true while resume_from_checkpoint is set: overwriting output_dir would delete the checkpoints to resume from");
  }
  if (c.finetuning_type != "lora") {
    for (const char* key : {"lora_rank", "lora_alpha", "lora_dropout", "lora_target"}) {
      if (given(c, key)) log::warn(origin_of(c, key).describe(), ": key '", key, "' has no effect with finetuning_type: ", c.finetuning_type);
    }
  }
  // Under ZeRO-3 the graphs read every layer whole where it stays (Zero3Options::resident_layers):
  // gathered by the SMs into memory of its own, within the budget for whole layers.
  if (c.cuda_graphs == "true" && c.zero_stage == 3 && c.zero3_gather_engine == "copy") {
    fail(c, "cuda_graphs", "with zero_stage: 3 keeps every layer whole in memory of its own, gathered by the SMs; "
                           "zero3_gather_engine: copy gathers into a few shared slots instead: use zero3_gather_engine auto or sm");
  }
  if (c.cuda_graphs == "true" && c.zero_stage == 3 && c.zero3_keep_gathered_mb <= 0) {
    fail(c, "cuda_graphs", "with zero_stage: 3 keeps every layer whole within zero3_keep_gathered_mb, which is 0: "
                           "raise it to the model's layers in the compute dtype, or set cuda_graphs: false");
  }
  if (c.cuda_graphs == "true" && c.gradient_checkpointing && c.finetuning_type == "lora" && c.lora_dropout > 0) {
    fail(c, "cuda_graphs", str("with gradient_checkpointing, the recomputed layer would draw other dropout masks than its ",
                               "forward (lora_dropout ", c.lora_dropout, "); set gradient_checkpointing: false or lora_dropout: 0"));
  }
  static const std::vector<std::string> modules = {"all", "q_proj", "k_proj", "v_proj", "o_proj",
                                                   "gate_proj", "up_proj", "down_proj"};
  for (const auto& name : split_list(c.lora_target)) {
    if (std::find(modules.begin(), modules.end(), name) != modules.end()) continue;
    auto guess = did_you_mean(name, modules);
    fail(c, "lora_target", str("'", name, "' is not a module of Qwen2/Llama (all, q_proj, k_proj, v_proj, o_proj, ",
                               "gate_proj, up_proj, down_proj)", guess ? "; did you mean '" + *guess + "'?" : ""));
  }
}

void check_model_dir(const JobConfig& c) {
  fs::path dir(c.model_name_or_path);
  if (!fs::is_directory(dir)) {
    fail(c, "model_name_or_path", str("'", c.model_name_or_path,
                                      "' is not a directory (pdsd reads local Hugging Face model dirs and never downloads)"));
  }
  if (!fs::is_regular_file(dir / "config.json")) {
    fail(c, "model_name_or_path", str("'", c.model_name_or_path, "' has no config.json: not a Hugging Face model dir"));
  }
}

void check_datasets(const JobConfig& c) {
  fs::path info_path = fs::path(c.dataset_dir) / "dataset_info.json";
  if (!fs::is_regular_file(info_path)) {
    fail(c, "dataset_dir", str("'", c.dataset_dir, "' has no dataset_info.json (LLaMA-Factory's data/ layout)"));
  }
  nlohmann::json info;
  try {
    std::ifstream in(info_path);
    info = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(str(info_path.string(), ": not valid JSON: ", e.what()));
  }
  if (!info.is_object()) throw ConfigError(str(info_path.string(), ": must be a JSON object of dataset entries"));
  std::vector<std::string> names;
  for (const auto& [name, _] : info.items()) names.push_back(name);
  for (const auto& name : split_list(c.dataset)) {
    if (!info.contains(name)) {
      auto guess = did_you_mean(name, names);
      fail(c, "dataset", str("'", name, "' is not in ", info_path.string(),
                             guess ? "; did you mean '" + *guess + "'?" : ""));
    }
    const auto& entry = info[name];
    if (!entry.is_object() || !entry.contains("file_name") || !entry["file_name"].is_string()) {
      throw ConfigError(str(info_path.string(), ": entry '", name, "' needs a \"file_name\" string"));
    }
    fs::path file = fs::path(c.dataset_dir) / entry["file_name"].get<std::string>();
    if (!fs::exists(file)) {
      throw ConfigError(str(info_path.string(), ": entry '", name, "': file_name '", file.string(), "' does not exist"));
    }
  }
}

void check_output(const JobConfig& c) {
  const std::string& resume = c.resume_from_checkpoint;
  bool numeric = !resume.empty() && std::all_of(resume.begin(), resume.end(), ::isdigit);
  bool keyword = resume.empty() || resume == "auto" || resume == "true" || resume == "false" || numeric;
  if (!keyword && !fs::is_directory(resume)) {
    fail(c, "resume_from_checkpoint", str("'", resume, "' is neither auto, a step number, nor an existing checkpoint dir"));
  }
  fs::path out(c.output_dir);
  bool resuming = !resume.empty() && resume != "false";
  if (fs::is_directory(out) && !fs::is_empty(out) && !c.overwrite_output_dir && !resuming) {
    fail(c, "output_dir", str("'", c.output_dir, "' exists and is not empty; set overwrite_output_dir: true, ",
                              "resume_from_checkpoint: auto, or choose another dir"));
  }
  if (fs::exists(out) && !fs::is_directory(out)) fail(c, "output_dir", str("'", c.output_dir, "' is a file"));
}

}  // namespace

void check_job_config(JobConfig& c) {
  if (c.log_level == "warning") c.log_level = "warn";
  check_required(c);
  check_combinations(c);
  check_model_dir(c);
  check_datasets(c);
  check_output(c);
}

}  // namespace pdsd
