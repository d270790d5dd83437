#include "worker/export/safetensors_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "common/error.h"

namespace pdsd {

namespace {
std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kBFloat16: return "BF16";
    case at::kHalf: return "F16";
    case at::kFloat: return "F32";
    case at::kDouble: return "F64";
    case at::kLong: return "I64";
    case at::kInt: return "I32";
    case at::kByte: return "U8";
    default: throw Error(pdsd::str("safetensors: cannot write dtype ", t));
  }
}

void write_all(int fd, const void* data, size_t size, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error(str(path, ": write failed: ", std::strerror(errno)));
    p += n;
    size -= static_cast<size_t>(n);
  }
}
}  // namespace

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> cpu;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
    uint64_t bytes = t.nbytes();
    header[name] = {{"dtype", dtype_name(t.scalar_type())}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    cpu.push_back(t);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t header_len = text.size();
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(str(tmp, ": cannot create: ", std::strerror(errno)));
  try {
    write_all(fd, &header_len, 8, tmp);
    write_all(fd, text.data(), text.size(), tmp);
    for (const auto& t : cpu) write_all(fd, t.data_ptr(), t.nbytes(), tmp);
    if (::fsync(fd) != 0) throw Error(str(tmp, ": fsync failed: ", std::strerror(errno)));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw Error(str(path, ": rename failed: ", std::strerror(errno)));
}

}  // namespace pdsd
