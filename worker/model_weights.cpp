#include "worker/model_weights.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"

namespace fs = std::filesystem;

namespace pdsd {

namespace {

at::ScalarType to_scalar_type(const std::string& dtype, const std::string& where) {
  if (dtype == "BF16") return at::kBFloat16;
  if (dtype == "F16") return at::kHalf;
  if (dtype == "F32") return at::kFloat;
  if (dtype == "F64") return at::kDouble;
  throw InputError(str(where, ": dtype ", dtype, " is not a floating-point weight type (BF16, F16, F32, F64)"));
}

std::vector<std::string> shard_files(const fs::path& dir) {
  fs::path index = dir / "model.safetensors.index.json";
  if (fs::is_regular_file(index)) {
    nlohmann::json j;
    try {
      std::ifstream in(index);
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw InputError(str(index.string(), ": not valid JSON: ", e.what()));
    }
    if (!j.contains("weight_map") || !j["weight_map"].is_object()) {
      throw InputError(str(index.string(), ": missing the \"weight_map\" object"));
    }
    std::set<std::string> names;
    for (const auto& [tensor, file] : j["weight_map"].items()) {
      if (!file.is_string()) throw InputError(str(index.string(), ": weight_map[\"", tensor, "\"] is not a file name"));
      names.insert(file.get<std::string>());
    }
    std::vector<std::string> paths;
    for (const auto& n : names) paths.push_back((dir / n).string());
    return paths;
  }
  fs::path single = dir / "model.safetensors";
  if (fs::is_regular_file(single)) return {single.string()};
  throw InputError(str(dir.string(), ": no model.safetensors or model.safetensors.index.json"));
}

std::string shape_text(at::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

ModelWeights load_model_weights(const std::string& model_dir, const ModelConfig& config) {
  ModelWeights weights;
  std::map<std::string, std::string> where;  // tensor → file, for messages
  for (const auto& path : shard_files(model_dir)) {
    auto file = std::make_shared<SafetensorsFile>(path);
    for (const auto& e : file->entries()) {
      if (weights.tensors.count(e.name)) {
        throw InputError(str(path, ": tensor '", e.name, "' is also in ", where[e.name]));
      }
      auto type = to_scalar_type(e.dtype, path + ": tensor '" + e.name + "'");
      // The deleter holds the file, so a view outliving ModelWeights keeps its mapping valid.
      at::Tensor view = at::from_blob(const_cast<std::byte*>(file->data(e)), e.shape, [file](void*) {},
                                      at::TensorOptions().dtype(type));
      weights.tensors.emplace(e.name, view);
      where[e.name] = path;
      weights.bytes += e.end - e.begin;
    }
    weights.files.push_back(std::move(file));
  }
  std::set<std::string> expected;
  for (const auto& spec : config.expected_weights()) {
    expected.insert(spec.name);
    auto it = weights.tensors.find(spec.name);
    if (it == weights.tensors.end()) {
      throw InputError(str(model_dir, ": tensor '", spec.name, "' is missing from the safetensors files"));
    }
    if (it->second.sizes() != at::IntArrayRef(spec.shape)) {
      throw InputError(str(where[spec.name], ": tensor '", spec.name, "' has shape ", shape_text(it->second.sizes()),
                           " but config.json implies ", shape_text(spec.shape)));
    }
  }
  for (const auto& [name, _] : weights.tensors) {
    // Tied models sometimes also save lm_head.weight; it must equal the embedding then, and is dropped.
    if (!expected.count(name) && !(name == "lm_head.weight" && config.tie_word_embeddings)) {
      throw InputError(str(where[name], ": tensor '", name, "' is not part of a ", config.model_type,
                           " model with this config.json"));
    }
  }
  weights.tensors.erase(config.tie_word_embeddings ? "lm_head.weight" : "");
  return weights;
}

}  // namespace pdsd
