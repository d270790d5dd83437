// Writes tensors as one .safetensors file (the format transformers, PEFT and vLLM read): an 8-byte
// header length, a JSON header {name: {dtype, shape, data_offsets}} padded with spaces to a multiple
// of 8, then the raw little-endian data. Written to "<path>.tmp", flushed, fsynced and renamed, so a
// crash never leaves a half-written file under the final name. Tensors are streamed in 64 MiB chunks
// (copied from the GPU where they live), so memory stays small whatever the file's size; the CRC-32
// of the bytes is computed while writing, on several threads (checkpoints record it in their
// manifest, worker/train/checkpoint_manifest.h).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace pdsd {

struct WrittenFile {
  uint64_t bytes = 0;
  uint32_t crc32 = 0;
};

// Test-only fault injection (PDSD_FAULT_INJECT, worker/train/checkpoint_faults.h): once `bytes_left`
// bytes have been written (counted over every file that shares this object), the next write fails as
// a full disk would (ENOSPC) — or, with `crash`, the process is killed mid-file, as a node loss would.
struct InjectedWriteFault {
  int64_t bytes_left = -1;  // -1: no fault
  bool crash = false;
};

WrittenFile write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata = {{"format", "pt"}},
                              InjectedWriteFault* fault = nullptr);

// write_safetensors in two halves, for a writer of several files (a checkpoint's rank): each file is
// written to "<path>.tmp" without waiting for the disk, then publish_written_file fsyncs and renames
// every one at the end. An fsync after each file left the disk's queue empty while the next file had
// not started: two files fsynced one by one wrote at 0.57 GB/s on a disk that takes 0.93 GB/s when
// both are fsynced at the end (dd, 5.9 GB).
WrittenFile write_safetensors_unsynced(const std::string& path,
                                       const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}},
                                       InjectedWriteFault* fault = nullptr);
void publish_written_file(const std::string& path);

}  // namespace pdsd
