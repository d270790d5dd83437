#include "common/cuda_graphs_choice.h"

#include "common/error.h"

namespace pdsd {

namespace {

// Why the graphs cannot run for this job, or "" when they can.
std::string cannot_run(const JobConfig& c, const CudaGraphsFacts& f) {
  if (!f.on_gpu) return "the worker runs on the CPU";
  if (!f.padding_free) {
    return "the micro-batches are not padding-free (padding_free: true with bf16 or fp16 on a GPU that runs flash "
           "attention, compute capability 8.0 or newer)";
  }
  if (c.gradient_checkpointing && c.finetuning_type == "lora" && c.lora_dropout > 0) {
    return "with gradient_checkpointing the recomputed layer would draw other LoRA dropout masks than its forward";
  }
  if (c.zero_stage == 3) {
    if (c.zero3_gather_engine == "copy") return "zero_stage 3 with zero3_gather_engine copy gathers layers into shared slots";
    const auto keep = static_cast<int64_t>(c.zero3_keep_gathered_mb * (1 << 20));
    if (f.all_layers_bytes > keep) {
      return str("zero_stage 3 keeps every layer whole under the graphs (", (f.all_layers_bytes + (1 << 20) - 1) >> 20,
                 " MiB here), more than zero3_keep_gathered_mb ", c.zero3_keep_gathered_mb);
    }
    // Full fine-tuning: the graphs' memory also holds every layer's weight gradients whole (as many
    // bytes again, until each is reduce-scattered): auto asks the budget to cover both.
    if (c.cuda_graphs == "auto" && c.finetuning_type == "full" && 2 * f.all_layers_bytes > keep) {
      return str("zero_stage 3 full fine-tuning under the graphs holds every layer and its gradients whole (",
                 (2 * f.all_layers_bytes + (1 << 20) - 1) >> 20, " MiB here), more than zero3_keep_gathered_mb ",
                 c.zero3_keep_gathered_mb);
    }
  }
  return "";
}

}  // namespace

CudaGraphsChoice choose_cuda_graphs(const JobConfig& config, const CudaGraphsFacts& facts) {
  if (config.cuda_graphs == "false") return {};
  const std::string why_not = cannot_run(config, facts);
  if (config.cuda_graphs == "true") {
    if (!why_not.empty()) throw InputError(str("cuda_graphs: true, but ", why_not, "; set cuda_graphs: auto or false"));
    return {true, ""};
  }
  if (!why_not.empty()) return {false, why_not};
  if (facts.layer_bytes >= kCudaGraphsAutoLayerBytes) {
    return {false, str("layers of ", facts.layer_bytes >> 20, " MiB keep the GPU busy without them (auto takes them under ",
                       kCudaGraphsAutoLayerBytes >> 20, " MiB)")};
  }
  return {true, str("layers of ", facts.layer_bytes >> 20, " MiB, under ", kCudaGraphsAutoLayerBytes >> 20,
                    " MiB: steps bound by the host's cost per operator")};
}

}  // namespace pdsd
