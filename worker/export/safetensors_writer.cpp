#include "worker/export/safetensors_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "worker/train/checkpoint_manifest.h"

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

void write_all(int fd, const void* data, size_t size, const std::string& path, Crc32& crc, InjectedWriteFault* fault) {
  const char* p = static_cast<const char*>(data);
  crc.update(p, size);
  while (size > 0) {
    size_t chunk = size;
    if (fault != nullptr && fault->bytes_left >= 0) {
      if (fault->bytes_left == 0) {
        if (fault->crash) ::raise(SIGKILL);  // as a node loss would: no unwinding, no cleanup
        errno = ENOSPC;
        throw Error(str(path, ": write failed: ", std::strerror(errno), " (injected by PDSD_FAULT_INJECT)"));
      }
      chunk = std::min<size_t>(chunk, static_cast<size_t>(fault->bytes_left));
    }
    ssize_t n = ::write(fd, p, chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error(str(path, ": write failed: ", std::strerror(errno)));
    p += n;
    size -= static_cast<size_t>(n);
    if (fault != nullptr && fault->bytes_left >= 0) fault->bytes_left -= n;
  }
}
}  // namespace

WrittenFile write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata, InjectedWriteFault* fault) {
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
  Crc32 crc;
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(str(tmp, ": cannot create: ", std::strerror(errno)));
  try {
    write_all(fd, &header_len, 8, path, crc, fault);
    write_all(fd, text.data(), text.size(), path, crc, fault);
    for (const auto& t : cpu) write_all(fd, t.data_ptr(), t.nbytes(), path, crc, fault);
    if (::fsync(fd) != 0) throw Error(str(tmp, ": fsync failed: ", std::strerror(errno)));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw Error(str(path, ": rename failed: ", std::strerror(errno)));
  return {8 + header_len + offset, crc.value()};
}

}  // namespace pdsd
