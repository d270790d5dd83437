// Writes tensors as one .safetensors file (the format transformers, PEFT and vLLM read): an 8-byte
// header length, a JSON header {name: {dtype, shape, data_offsets}} padded with spaces to a multiple
// of 8, then the raw little-endian data. Written to "<path>.tmp", flushed, fsynced and renamed, so a
// crash never leaves a half-written file under the final name.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace pdsd {

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace pdsd
