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

// Streams the file through two host buffers of a fixed size: while one is being checksummed and
// written (and handed to the disk with sync_file_range, so writeback runs all along instead of in one
// fsync at the end), the next is filled from the header and the tensors (copied from the GPU when
// they are there). Small tensors share a buffer, so every write but the last is a whole buffer: a
// checkpoint has hundreds of small tensors (norms, biases, their optimizer state), and a write per
// tensor left the disk waiting between them. Memory stays two buffers, whatever the file's size.
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

  void bytes(const void* data, size_t size) {  // host bytes (the header)
    const auto* p = static_cast<const uint8_t*>(data);
    while (size > 0) {
      const size_t n = std::min(size, static_cast<size_t>(kChunk - filled_));
      std::memcpy(buffers_[next_].data_ptr<uint8_t>() + filled_, p, n);
      advance(static_cast<int64_t>(n));
      p += n, size -= n;
    }
  }

  void tensor(const at::Tensor& t) {
    at::Tensor flat = t.detach().contiguous().view({-1}).view(at::kByte);
    for (int64_t at = 0; at < flat.numel();) {
      const int64_t n = std::min(kChunk - filled_, flat.numel() - at);
      buffers_[next_].narrow(0, filled_, n).copy_(flat.narrow(0, at, n));
      advance(n);
      at += n;
    }
  }

  uint32_t finish() {
    hand_over();
    finish_pending();
    return crc_;
  }

 private:
  void advance(int64_t n) {
    filled_ += n;
    if (filled_ == kChunk) hand_over();
  }
  // The filled buffer goes to the writer thread once the other one's write is done; filling goes on
  // in the other buffer.
  void hand_over() {
    if (filled_ == 0) return;
    finish_pending();
    at::Tensor buffer = buffers_[next_];
    const size_t n = static_cast<size_t>(filled_);
    pending_ = std::async(std::launch::async, [this, buffer, n] { write_chunk(buffer.data_ptr<uint8_t>(), n); });
    next_ = 1 - next_;
    filled_ = 0;
  }
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
  int64_t filled_ = 0;  // bytes waiting in buffers_[next_]
  std::future<void> pending_;
  uint32_t crc_ = 0;
  uint64_t written_ = 0;
};
}  // namespace

WrittenFile write_safetensors_unsynced(const std::string& path,
                                       const std::vector<std::pair<std::string, at::Tensor>>& tensors,
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
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw Error(str(tmp, ": close failed: ", std::strerror(err)));
  }
  return {8 + header_len + offset, crc};
}

void publish_written_file(const std::string& path) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(str(tmp, ": cannot open to fsync: ", std::strerror(errno)));
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error(str(tmp, ": fsync failed: ", std::strerror(err)));
  }
  ::close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw Error(str(path, ": rename failed: ", std::strerror(errno)));
}

WrittenFile write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata, InjectedWriteFault* fault) {
  WrittenFile written = write_safetensors_unsynced(path, tensors, metadata, fault);
  publish_written_file(path);
  return written;
}

}  // namespace pdsd
