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

}  // namespace pdsd
