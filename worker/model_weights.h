// A Hugging Face model dir's weights as at::Tensor views into memory-mapped safetensors files,
// checked against the tensors the config says the model has (names and shapes, none missing, none extra).
// Single-file (model.safetensors) and sharded (model.safetensors.index.json) layouts.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "worker/model_config.h"
#include "worker/safetensors_file.h"

namespace pdsd {

struct ModelWeights {
  std::vector<std::shared_ptr<SafetensorsFile>> files;  // kept alive by every tensor view as well
  std::map<std::string, at::Tensor> tensors;
  uint64_t bytes = 0;
};

ModelWeights load_model_weights(const std::string& model_dir, const ModelConfig& config);

}  // namespace pdsd
