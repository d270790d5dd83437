#include "worker/export/export_options.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <map>

#include "common/did_you_mean.h"
#include "common/error.h"

namespace pdsd {

namespace {

const std::vector<std::string> kKeys = {"model_name_or_path", "adapter_name_or_path", "checkpoint", "export_dir",
                                        "export_size", "infer_dtype", "export_adapter", "finetuning_type", "template",
                                        "export_device", "export_legacy_format", "trust_remote_code"};

bool to_bool(const std::string& where, const std::string& key, const std::string& v) {
  if (v == "true" || v == "True") return true;
  if (v == "false" || v == "False") return false;
  throw InputError(str(where, ": key '", key, "': '", v, "' is not true or false"));
}

void set(ExportOptions& o, const std::string& where, const std::string& key, const std::string& value) {
  if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end()) {
    auto guess = did_you_mean(key, kKeys);
    throw InputError(str(where, ": key '", key, "' is not an export setting",
                         guess ? str("; did you mean '", *guess, "'?") : std::string()));
  }
  if (key == "model_name_or_path") o.model_name_or_path = value;
  else if (key == "adapter_name_or_path") o.adapter_name_or_path = value;
  else if (key == "checkpoint") o.checkpoint = value;
  else if (key == "export_dir") o.export_dir = value;
  else if (key == "finetuning_type") o.finetuning_type = value;
  else if (key == "export_adapter") o.export_adapter = to_bool(where, key, value);
  else if (key == "export_legacy_format" && to_bool(where, key, value)) {
    throw InputError(str(where, ": key 'export_legacy_format': pdsd writes safetensors only"));
  } else if (key == "infer_dtype") {
    if (value != "auto" && value != "float32" && value != "bfloat16" && value != "float16") {
      throw InputError(str(where, ": key 'infer_dtype': '", value, "' is not one of auto, float32, bfloat16, float16"));
    }
    o.infer_dtype = value;
  } else if (key == "export_size") {
    try {
      size_t used = 0;
      o.export_size = std::stod(value, &used);
      if (used != value.size() || !(o.export_size > 0)) throw std::invalid_argument("");
    } catch (const std::exception&) {
      throw InputError(str(where, ": key 'export_size': '", value, "' is not a positive number of GB"));
    }
  }
}

}  // namespace

ExportOptions parse_export_options(const std::string& yaml_path, const std::vector<std::string>& overrides) {
  ExportOptions o;
  if (!yaml_path.empty()) {
    YAML::Node root;
    try {
      root = YAML::LoadFile(yaml_path);
    } catch (const YAML::Exception& e) {
      throw InputError(str(yaml_path, ": ", e.what()));
    }
    if (!root.IsMap()) throw InputError(str(yaml_path, ": expected key: value lines"));
    for (const auto& kv : root) {
      const std::string key = kv.first.as<std::string>();
      set(o, str(yaml_path, ":", kv.first.Mark().line + 1), key, kv.second.IsNull() ? "" : kv.second.as<std::string>());
    }
  }
  for (const auto& item : overrides) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos) throw InputError(str("command line: '", item, "' is not key=value"));
    set(o, "command line", item.substr(0, eq), item.substr(eq + 1));
  }
  if (o.export_dir.empty()) throw InputError("export: export_dir is required (where to write the model)");
  if (o.checkpoint.empty() && o.adapter_name_or_path.empty() && o.model_name_or_path.empty()) {
    throw InputError("export: give checkpoint (a checkpoint-<step> dir), adapter_name_or_path or model_name_or_path");
  }
  return o;
}

}  // namespace pdsd
