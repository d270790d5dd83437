#include "worker/safetensors_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/error.h"

namespace pdsd {

size_t safetensors_dtype_size(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" || dtype == "F8_E4M3" || dtype == "F8_E5M2") return 1;
  return 0;
}

SafetensorsFile::SafetensorsFile(std::string path) : path_(std::move(path)) {
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw InputError(str(path_, ": cannot open: ", std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    throw InputError(str(path_, ": cannot stat: ", std::strerror(err)));
  }
  mapped_size_ = static_cast<size_t>(st.st_size);
  if (mapped_size_ < 8) {
    ::close(fd);
    throw InputError(str(path_, ": truncated: ", mapped_size_, " bytes, too short for a safetensors header"));
  }
  mapping_ = ::mmap(nullptr, mapped_size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);  // the mapping keeps the file open
  if (mapping_ == MAP_FAILED) {
    mapping_ = nullptr;
    throw InputError(str(path_, ": mmap failed: ", std::strerror(errno)));
  }
  try {
    const auto* bytes = static_cast<const std::byte*>(mapping_);
    uint64_t header_len = 0;
    std::memcpy(&header_len, bytes, 8);  // little-endian on every platform we run on
    if (header_len > mapped_size_ - 8) {
      throw InputError(str(path_, ": bad header: it claims ", header_len, " bytes but the file has ", mapped_size_));
    }
    data_ = bytes + 8 + header_len;
    const uint64_t data_size = mapped_size_ - 8 - header_len;
    nlohmann::json header;
    try {
      header = nlohmann::json::parse(reinterpret_cast<const char*>(bytes + 8),
                                     reinterpret_cast<const char*>(bytes + 8 + header_len));
    } catch (const nlohmann::json::exception& e) {
      throw InputError(str(path_, ": bad header: not valid JSON: ", e.what()));
    }
    if (!header.is_object()) throw InputError(str(path_, ": bad header: not a JSON object"));
    for (const auto& [name, info] : header.items()) {
      if (name == "__metadata__") continue;
      auto bad = [&](const std::string& why) { return InputError(str(path_, ": tensor '", name, "': ", why)); };
      if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") || !info.contains("data_offsets")) {
        throw bad("needs dtype, shape and data_offsets");
      }
      SafetensorsEntry e;
      e.name = name;
      e.dtype = info["dtype"].is_string() ? info["dtype"].get<std::string>() : "";
      size_t elem = safetensors_dtype_size(e.dtype);
      if (elem == 0) throw bad("unsupported dtype " + info["dtype"].dump());
      uint64_t numel = 1;
      for (const auto& d : info["shape"]) {
        if (!d.is_number_unsigned()) throw bad("shape must hold non-negative integers, got " + info["shape"].dump());
        e.shape.push_back(d.get<int64_t>());
        numel *= d.get<uint64_t>();
      }
      const auto& off = info["data_offsets"];
      if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned()) {
        throw bad("data_offsets must be [begin, end]");
      }
      e.begin = off[0].get<uint64_t>();
      e.end = off[1].get<uint64_t>();
      if (e.end < e.begin || e.end > data_size) {
        throw bad(str("data_offsets [", e.begin, ", ", e.end, "] lie outside the data (", data_size,
                      " bytes): the file is truncated or corrupt"));
      }
      if (e.end - e.begin != numel * elem) {
        throw bad(str("holds ", e.end - e.begin, " bytes but its shape and dtype need ", numel * elem));
      }
      entries_.push_back(std::move(e));
    }
    std::vector<const SafetensorsEntry*> by_offset;
    for (const auto& e : entries_) by_offset.push_back(&e);
    std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
    for (size_t i = 1; i < by_offset.size(); ++i) {
      if (by_offset[i]->begin < by_offset[i - 1]->end) {
        throw InputError(str(path_, ": tensors '", by_offset[i - 1]->name, "' and '", by_offset[i]->name,
                             "' overlap in the file"));
      }
    }
  } catch (...) {
    ::munmap(mapping_, mapped_size_);
    mapping_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapped_size_);
}

}  // namespace pdsd
