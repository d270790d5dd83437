// Whether a job's decoder layers run as CUDA graphs (job key cuda_graphs: true, false or auto; see
// worker/model/layer_graphs.h). true asks for them and is an error where they cannot run; auto takes
// them where they can run and the model is small enough for its steps to be bound by the host's
// cost per operator, which is what they remove: layers under 128 MiB in the compute dtype (a
// Qwen2.5-0.5B layer is 29 MiB; a 7B one, 466 MiB, keeps its GPU busy without them, and its
// micro-batches would only pay the graphs' padding, up to one eighth more tokens).
#pragma once

#include <cstdint>
#include <string>

#include "common/job_config.h"

namespace pdsd {

struct CudaGraphsFacts {
  bool on_gpu = false;
  bool padding_free = false;     // the job's micro-batches are (padding_free, bf16/fp16, flash attention)
  int64_t layer_bytes = 0;       // the widest decoder layer, in the compute dtype
  int64_t all_layers_bytes = 0;  // every decoder layer whole on one rank (ZeRO-3: as it would gather them)
};

struct CudaGraphsChoice {
  bool on = false;
  std::string why;  // for the log: why auto took them or not ("" for true / false)
};

inline constexpr int64_t kCudaGraphsAutoLayerBytes = int64_t{128} << 20;

// Throws InputError naming cuda_graphs when it is true and the graphs cannot run.
CudaGraphsChoice choose_cuda_graphs(const JobConfig& config, const CudaGraphsFacts& facts);

}  // namespace pdsd
