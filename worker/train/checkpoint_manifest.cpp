#include "worker/train/checkpoint_manifest.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <array>
#include <filesystem>
#include <future>
#include <fstream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"

namespace fs = std::filesystem;

namespace pdsd {

void Crc32::update(const void* data, size_t size) {
  const auto* p = static_cast<const Bytef*>(data);
  while (size > 0) {  // zlib takes a uInt length
    const uInt n = static_cast<uInt>(std::min<size_t>(size, std::numeric_limits<uInt>::max()));
    crc_ = static_cast<uint32_t>(::crc32(crc_, p, n));
    p += n;
    size -= n;
  }
}

namespace {

std::string hex32(uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw Error(str(path.string(), ": cannot open"));
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(str(path.string(), ": not valid JSON (", e.what(), ")"));
  }
}

}  // namespace

uint32_t crc32_of(const void* data, size_t size) {
  const auto* p = static_cast<const Bytef*>(data);
  constexpr size_t kParts = 4;
  if (size < (size_t{8} << 20)) return static_cast<uint32_t>(::crc32_z(0, p, size));
  const size_t part = size / kParts;
  std::array<std::future<uLong>, kParts> crcs;
  for (size_t i = 0; i < kParts; ++i) {
    const size_t n = i + 1 == kParts ? size - i * part : part;
    crcs[i] = std::async(std::launch::async, [=] { return ::crc32_z(0, p + i * part, n); });
  }
  uLong crc = crcs[0].get();
  for (size_t i = 1; i < kParts; ++i) {
    const size_t n = i + 1 == kParts ? size - i * part : part;
    crc = ::crc32_combine(crc, crcs[i].get(), static_cast<z_off_t>(n));
  }
  return static_cast<uint32_t>(crc);
}

uint32_t crc32_concat(uint32_t crc_a, uint32_t crc_b, uint64_t size_b) {
  return static_cast<uint32_t>(::crc32_combine(crc_a, crc_b, static_cast<z_off_t>(size_b)));
}

namespace {

// CRC-32 of bytes [offset, offset + size) of an open file, read in 16 MiB pieces with pread.
uint32_t crc32_of_range(int fd, const std::string& path, uint64_t offset, uint64_t size) {
  constexpr size_t kPiece = size_t{16} << 20;
  std::unique_ptr<char[]> buf(new char[kPiece]);
  Crc32 crc;
  while (size > 0) {
    const ssize_t n = ::pread(fd, buf.get(), static_cast<size_t>(std::min<uint64_t>(size, kPiece)), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(str(path, ": read failed at byte ", offset, ": ", std::strerror(errno)));
    if (n == 0) throw Error(str(path, ": ended at byte ", offset, " while being read (truncated meanwhile?)"));
    crc.update(buf.get(), static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n), size -= static_cast<uint64_t>(n);
  }
  return crc.value();
}

}  // namespace

// A large file is read as up to 8 ranges at once, each by its own thread with its own CRC, combined
// at the end: one thread reading and checksumming reached about half of what the disk (or page
// cache) gives on the GPU machine, and a rank's checkpoint is one or two large files.
FileDigest digest_file(const std::string& dir, const std::string& name, uint64_t min_range_bytes) {
  const std::string path = (fs::path(dir) / name).string();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(str(path, ": cannot open: ", std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error(str(path, ": cannot stat: ", std::strerror(err)));
  }
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  const auto size = static_cast<uint64_t>(st.st_size);
  const uint64_t ranges = std::clamp<uint64_t>(size / std::max<uint64_t>(min_range_bytes, 1), 1, 8);
  const uint64_t each = size / ranges;
  FileDigest d{name, size, 0};
  try {
    std::vector<std::future<uint32_t>> crcs;
    for (uint64_t i = 0; i < ranges; ++i) {
      const uint64_t n = i + 1 == ranges ? size - i * each : each;
      crcs.push_back(std::async(i == 0 ? std::launch::deferred : std::launch::async,
                                [fd, &path, off = i * each, n] { return crc32_of_range(fd, path, off, n); }));
    }
    for (uint64_t i = 0; i < ranges; ++i) {
      const uint64_t n = i + 1 == ranges ? size - i * each : each;
      d.crc32 = i == 0 ? crcs[0].get() : crc32_concat(d.crc32, crcs[i].get(), n);
    }
  } catch (...) {
    ::close(fd);  // every future was waited for (get() or its destructor) before the fd closes
    throw;
  }
  ::close(fd);
  return d;
}

void write_file_durably(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(str(path, ": cannot create: ", std::strerror(errno)));
  const char* p = text.data();
  size_t left = text.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : ENOSPC;
      ::close(fd);
      throw Error(str(path, ": write failed: ", std::strerror(err)));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    throw Error(str(path, ": fsync failed: ", std::strerror(err)));
  }
  ::close(fd);
}

void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw Error(str(dir, ": cannot open folder: ", std::strerror(errno)));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL) throw Error(str(dir, ": fsync of the folder failed: ", std::strerror(err)));
}

namespace {
std::string digests_name(int rank) { return ".digests-rank" + std::to_string(rank) + ".json"; }

nlohmann::json to_json(const std::vector<FileDigest>& files) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& f : files) j[f.name] = {{"bytes", f.bytes}, {"crc32", hex32(f.crc32)}};
  return j;
}

std::vector<FileDigest> from_json(const nlohmann::json& j) {
  std::vector<FileDigest> out;
  for (const auto& [name, v] : j.items()) {
    out.push_back({name, v.at("bytes").get<uint64_t>(),
                   static_cast<uint32_t>(std::stoul(v.at("crc32").get<std::string>(), nullptr, 16))});
  }
  return out;
}
}  // namespace

void write_rank_digests(const std::string& dir, int rank, const std::vector<FileDigest>& files) {
  write_file_durably((fs::path(dir) / digests_name(rank)).string(), to_json(files).dump() + "\n");
}

std::vector<FileDigest> merge_rank_digests(const std::string& dir, int world_size) {
  std::vector<FileDigest> all;
  for (int r = 0; r < world_size; ++r) {
    const fs::path part = fs::path(dir) / digests_name(r);
    for (auto& f : from_json(read_json(part))) {
      // The file must be on disk as its writer described it before the manifest vouches for it.
      struct stat st {};
      const std::string path = (fs::path(dir) / f.name).string();
      if (::stat(path.c_str(), &st) != 0) throw Error(str(path, ": written by rank ", r, " but missing"));
      PDSD_CHECK(static_cast<uint64_t>(st.st_size) == f.bytes, path, ": ", st.st_size, " bytes on disk, rank ", r,
                 " wrote ", f.bytes);
      all.push_back(std::move(f));
    }
  }
  for (int r = 0; r < world_size; ++r) fs::remove(fs::path(dir) / digests_name(r));
  return all;
}

void write_manifest(const std::string& dir, const std::vector<FileDigest>& files) {
  nlohmann::json j = {{"format", kCheckpointFormat}, {"files", to_json(files)}};
  write_file_durably((fs::path(dir) / kManifestFile).string(), j.dump(2) + "\n");
  fsync_dir(dir);
}

namespace {
// Part `part` of `parts` shares of the files, balanced by bytes (largest first, each to the least
// loaded share); every caller with the same manifest computes the same split.
std::vector<FileDigest> share_of(std::vector<FileDigest> files, int part, int parts) {
  std::stable_sort(files.begin(), files.end(), [](const FileDigest& a, const FileDigest& b) { return a.bytes > b.bytes; });
  std::vector<uint64_t> load(static_cast<size_t>(parts), 0);
  std::vector<FileDigest> mine;
  for (auto& f : files) {
    const auto least = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    load[static_cast<size_t>(least)] += f.bytes;
    if (least == part) mine.push_back(std::move(f));
  }
  return mine;
}
}  // namespace

std::string validate_checkpoint(const std::string& dir, bool checksums, int part, int parts) {
  const fs::path manifest = fs::path(dir) / kManifestFile;
  if (!fs::exists(manifest)) return str(manifest.string(), ": missing (a save that never finished)");
  nlohmann::json j;
  std::vector<FileDigest> files;
  try {
    j = read_json(manifest);
    if (j.value("format", 0) != kCheckpointFormat) {
      return str(manifest.string(), ": format ", j.value("format", 0), ", this pdsd reads format ", kCheckpointFormat);
    }
    files = from_json(j.at("files"));
  } catch (const std::exception& e) {
    return str(manifest.string(), ": unreadable (", e.what(), ")");
  }
  if (files.empty()) return str(manifest.string(), ": lists no files");
  for (const auto& f : files) {
    const std::string path = (fs::path(dir) / f.name).string();
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return str(path, ": missing (the manifest lists it)");
    const auto size = static_cast<uint64_t>(st.st_size);
    if (size != f.bytes) {
      return str(path, ": ", size, " bytes, the manifest says ", f.bytes, size < f.bytes ? " (truncated)" : "");
    }
  }
  if (!checksums) return "";
  if (parts > 1) files = share_of(std::move(files), part, parts);
  // Several files at once (each rank's are of a size): reading them is most of a resume's wait.
  // At most kParallel at a time, so a checkpoint of hundreds of ranks does not start hundreds of
  // threads: with digest_file's up to 8 ranges each, at most 32 reading threads (16 MiB buffer each).
  constexpr size_t kParallel = 4;
  for (size_t first = 0; first < files.size(); first += kParallel) {
    const size_t last = std::min(files.size(), first + kParallel);
    std::vector<std::future<FileDigest>> digests;
    try {
      for (size_t i = first; i < last; ++i) {
        digests.push_back(std::async(std::launch::async, [&dir, name = files[i].name] { return digest_file(dir, name); }));
      }
    } catch (const std::system_error& e) {
      return str(dir, ": cannot start reading its files: ", e.what());
    }
    for (size_t i = first; i < last; ++i) {
      const FileDigest& f = files[i];
      try {
        FileDigest d = digests[i - first].get();
        if (d.crc32 != f.crc32) {
          return str((fs::path(dir) / f.name).string(), ": CRC-32 ", hex32(d.crc32), ", the manifest says ",
                     hex32(f.crc32), " (the file was changed or corrupted after it was written)");
        }
      } catch (const std::exception& e) {
        return e.what();
      }
    }
  }
  return "";
}

}  // namespace pdsd
