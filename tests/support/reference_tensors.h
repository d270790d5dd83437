// Test helper: tensors a reference script wrote with safetensors, read back as at::Tensor copies,
// and a runner for the reference scripts in tests/peer/ (the real transformers/PEFT, in .venv).
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <string>

#include "tests/support/run_command.h"
#include "worker/safetensors_file.h"

namespace pdsd::testing {

inline std::map<std::string, at::Tensor> read_reference_tensors(const std::string& path) {
  SafetensorsFile file(path);
  std::map<std::string, at::Tensor> out;
  for (const auto& e : file.entries()) {
    at::ScalarType type = e.dtype == "F32" ? at::kFloat : e.dtype == "I64" ? at::kLong : e.dtype == "BF16" ? at::kBFloat16 : at::kDouble;
    out[e.name] = at::from_blob(const_cast<std::byte*>(file.data(e)), e.shape, at::TensorOptions().dtype(type)).clone();
  }
  return out;
}

// Runs `python tests/peer/<script> <args>`; the result's output explains a failure.
inline CommandResult run_reference_script(const std::string& script, const std::string& args) {
  return run_command(std::string(PDSD_PYTHON) + " " + PDSD_SOURCE_DIR + "/tests/peer/" + script + " " + args, 600);
}

}  // namespace pdsd::testing
