// One .safetensors file, memory-mapped read-only, with its header parsed and checked.
//
// Format: 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets}},
// then the data. Every entry is checked against the file before anyone reads it: known dtype, byte
// range inside the file and equal to shape × element size, no two ranges overlapping. Tensors are
// then views into the mapping, so loading costs no second copy of the weights in host RAM.
//
//   auto file = std::make_shared<SafetensorsFile>("model.safetensors");
//   for (const auto& e : file->entries()) use(e.name, e.shape, file->data(e));
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pdsd {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // "BF16", "F16", "F32", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets into the data section
  uint64_t end = 0;
};

// Bytes per element of a safetensors dtype name; 0 if unknown.
size_t safetensors_dtype_size(const std::string& dtype);

class SafetensorsFile {
 public:
  explicit SafetensorsFile(std::string path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const std::byte* data(const SafetensorsEntry& entry) const { return data_ + entry.begin; }

 private:
  std::string path_;
  void* mapping_ = nullptr;
  size_t mapped_size_ = 0;
  const std::byte* data_ = nullptr;
  std::vector<SafetensorsEntry> entries_;
};

}  // namespace pdsd
