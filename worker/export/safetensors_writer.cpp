#include "worker/export/safetensors_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <csignal>
#include <future>
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

void write_all(int fd, const void* data, size_t size, const std::string& path, InjectedWriteFault* fault) {
  const char* p = static_cast<const char*>(data);
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

// Streams tensor bytes to the file in chunks through two host buffers: while one chunk is being
// checksummed and written (and handed to the disk with sync_file_range, so writeback runs all along
// instead of in one fsync at the end), the next is copied out of the tensor (from the GPU when it is
// there). Memory stays two chunks, whatever the file's size.
class ChunkedWriter {
 public:
  static constexpr int64_t kChunk = 64 << 20;

  ChunkedWriter(int fd, std::string path, InjectedWriteFault* fault, bool pinned)
      : fd_(fd), path_(std::move(path)), fault_(fault) {
    for (auto& b : buffers_) b = at::empty({kChunk}, at::TensorOptions().dtype(at::kByte).pinned_memory(pinned));
  }
  ~ChunkedWriter() {
    if (pending_.valid()) pending_.wait();
  }

  void bytes(const void* data, size_t size) {  // small pieces (the header): straight through
    finish_pending();
    crc_ = crc32_concat(crc_, crc32_of(data, size), size);
    write_all(fd_, data, size, path_, fault_);
    written_ += size;
  }

  void tensor(const at::Tensor& t) {
    at::Tensor flat = t.detach().contiguous().view({-1}).view(at::kByte);
    for (int64_t at = 0; at < flat.numel(); at += kChunk) {
      const int64_t n = std::min<int64_t>(kChunk, flat.numel() - at);
      at::Tensor buffer = buffers_[next_];
      next_ = 1 - next_;
      buffer.narrow(0, 0, n).copy_(flat.narrow(0, at, n));  // waits for the chunk before last's write
      finish_pending();
      pending_ = std::async(std::launch::async, [this, buffer, n] { write_chunk(buffer.data_ptr<uint8_t>(), static_cast<size_t>(n)); });
    }
  }

  uint32_t finish() {
    finish_pending();
    return crc_;
  }

 private:
  void write_chunk(const uint8_t* data, size_t n) {
    auto crc = std::async(std::launch::async, [=] { return crc32_of(data, n); });
    write_all(fd_, data, n, path_, fault_);
    ::sync_file_range(fd_, static_cast<off64_t>(written_), static_cast<off64_t>(n), SYNC_FILE_RANGE_WRITE);
    crc_ = crc32_concat(crc_, crc.get(), n);
    written_ += n;
  }
  void finish_pending() {
    if (pending_.valid()) pending_.get();  // rethrows a write failure here, on the caller's thread
  }

  int fd_;
  std::string path_;
  InjectedWriteFault* fault_;
  std::array<at::Tensor, 2> buffers_;
  int next_ = 0;
  std::future<void> pending_;
  uint32_t crc_ = 0;
  uint64_t written_ = 0;
};
}  // namespace

WrittenFile write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata, InjectedWriteFault* fault) {
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  bool on_gpu = false;
  for (const auto& [name, tensor] : tensors) {
    const uint64_t bytes = tensor.nbytes();
    header[name] = {{"dtype", dtype_name(tensor.scalar_type())}, {"shape", tensor.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    on_gpu = on_gpu || tensor.is_cuda();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t header_len = text.size();
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(str(tmp, ": cannot create: ", std::strerror(errno)));
  uint32_t crc = 0;
  try {
    ChunkedWriter writer(fd, path, fault, /*pinned=*/on_gpu);
    writer.bytes(&header_len, 8);
    writer.bytes(text.data(), text.size());
    for (const auto& [name, tensor] : tensors) writer.tensor(tensor);
    crc = writer.finish();
    if (::fsync(fd) != 0) throw Error(str(tmp, ": fsync failed: ", std::strerror(errno)));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw Error(str(path, ": rename failed: ", std::strerror(errno)));
  return {8 + header_len + offset, crc};
}

}  // namespace pdsd
