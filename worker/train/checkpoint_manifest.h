// What makes a checkpoint folder trustworthy: manifest.json, written last, lists every file with its
// byte size and CRC-32 (zlib's polynomial, as gzip and PNG use); a folder is a checkpoint only when
// the manifest is there and every file matches it. Everything here is plain POSIX + zlib (no torch).
//
//   Crc32 crc; crc.update(data, n);                       // while writing a file
//   write_rank_digests(tmp_dir, rank, {{"optimizer-rank1.safetensors", bytes, crc.value()}});
//   write_manifest(tmp_dir, merge_rank_digests(tmp_dir, world_size));   // rank 0, after every rank wrote
//   if (auto why = validate_checkpoint(dir); !why.empty()) skip(dir, why);  // "…/model.safetensors: …"
//
// Writes are durable before they are published: each file is fsynced, then its folder.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pdsd {

inline constexpr const char* kManifestFile = "manifest.json";
inline constexpr int kCheckpointFormat = 2;

// CRC-32 (zlib's) of a buffer, large ones split over four threads and combined: one core's CRC-32
// is slower than a disk. And the CRC-32 of A followed by B from both CRCs and B's length.
uint32_t crc32_of(const void* data, size_t size);
uint32_t crc32_concat(uint32_t crc_a, uint32_t crc_b, uint64_t size_b);

class Crc32 {
 public:
  void update(const void* data, size_t size);
  uint32_t value() const { return crc_; }

 private:
  uint32_t crc_ = 0;
};

struct FileDigest {
  std::string name;  // relative to the checkpoint folder
  uint64_t bytes = 0;
  uint32_t crc32 = 0;
};

// Reads the whole file; throws Error naming it when it cannot be read. A file of at least twice
// `min_range_bytes` is read as up to 8 ranges in parallel.
FileDigest digest_file(const std::string& dir, const std::string& name, uint64_t min_range_bytes = uint64_t{128} << 20);

// Writes `text` to `path` and fsyncs it; throws Error naming the file (ENOSPC included).
void write_file_durably(const std::string& path, const std::string& text);
void fsync_dir(const std::string& dir);

// Each rank lists what it wrote in <dir>/.digests-rank<r>.json; rank 0 merges them (and removes them).
void write_rank_digests(const std::string& dir, int rank, const std::vector<FileDigest>& files);
std::vector<FileDigest> merge_rank_digests(const std::string& dir, int world_size);

// manifest.json: {"format": 2, "files": {name: {"bytes": n, "crc32": "xxxxxxxx"}}}, durably.
void write_manifest(const std::string& dir, const std::vector<FileDigest>& files);

// "" when `dir` holds a manifest and every listed file has its size (and, with `checksums`, its
// CRC-32); else the reason, naming the file: ".../checkpoint-8/model.safetensors: 1048 bytes, the
// manifest says 4096 (truncated)". With `parts` > 1 only share `part` of the files (balanced by
// bytes) is checksummed, so that the ranks of a job read each byte once between them.
std::string validate_checkpoint(const std::string& dir, bool checksums = true, int part = 0, int parts = 1);

}  // namespace pdsd
