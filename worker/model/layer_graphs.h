// CUDA graphs of the decoder layers (job key cuda_graphs). A small model on a big GPU is bound by the
// host: each layer costs dozens of operator launches forward and backward, each worth a few
// microseconds of GPU work. Replaying a captured graph costs one launch for all of them.
//
// One set of graphs per token-count bucket: a padding-free micro-batch of T tokens in S sequences
// runs padded to the bucket's T_b tokens (up to one eighth more, at most S_cap sequences). The pad
// tokens form a sequence of their own (cu_seqlens), with zero inputs and zero output gradients, so
// they change neither the real tokens' outputs nor any gradient. Per bucket, captured in the order
// they replay: forward of each layer in turn, then backward from the last layer down (with gradient
// checkpointing the forward keeps nothing and the backward recomputes). Layer L+1's graph reads
// layer L's output where L's graph wrote it; backward chains the same way; nothing is copied
// between layers.
//
// Memory: every tensor of a capture is transient (written before it is read within one micro-batch's
// forward and backward), so all buckets share one memory pool, and after a bucket is captured all
// its tensors are given back to that pool for the next bucket's capture. A micro-batch of another
// bucket overwrites them; the next micro-batch of this bucket writes them again. The graphs' memory is
// therefore about one micro-batch's of the largest bucket, not one per bucket.
//
//   LayerGraphs graphs(model);                     // after LoRA adapters exist, before training
//   model.set_layer_runner(graphs.runner(), [](int64_t) { return false; });
//
// Under ZeRO-3 the layers' weights are the views Zero3Parameters keeps resident (Zero3Options::
// resident_layers): fixed addresses, refilled in place after each update, the trainable ones views
// of one flat leaf per layer whose gradient is reduce-scattered as without graphs. `weights_ready`
// (Zero3Parameters::wait_for_layer) is then called before each layer runs, so that a replay waits
// for the update's gather of its weights.
//
// Batches it cannot run (no cu_seqlens, CPU, not training or grad mode off: evaluation) run eagerly.
// Memory: with full fine-tuning the pool also holds one layer set's gradients, copied from there into
// .grad (about one bf16/fp32 copy of the trained weights more than eager ZeRO-2 keeps at its peak).
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "worker/model/causal_lm.h"

namespace pdsd {

// The bucket a micro-batch of `tokens` tokens is padded to: the next multiple of one eighth of the
// power of two below it (at least 64), so at most 12.5% padding and 8 buckets per doubling.
int64_t graph_token_bucket(int64_t tokens);

class LayerGraphs {
 public:
  // Graphs the layers from the model's first trained layer up (those below run without autograd);
  // LoRA casts per step are turned off (the graphs cast the fp32 adapters themselves).
  explicit LayerGraphs(CausalLM& model, std::function<void(int64_t layer)> weights_ready = {});
  ~LayerGraphs();
  LayerGraphs(const LayerGraphs&) = delete;
  LayerGraphs& operator=(const LayerGraphs&) = delete;

  CausalLM::LayerRunner runner();

  // Captures, before training, the buckets of micro-batches known in advance ((tokens, sequences)
  // each: BatchPlan::micro_batch_shapes), largest first so that the smaller ones fit in its memory.
  // A capture in mid-run stalls this rank and, at the next collective, every other; returns seconds.
  double capture_ahead(const std::vector<std::pair<int64_t, int64_t>>& micro_batches);

  int64_t buckets_captured() const { return static_cast<int64_t>(buckets_.size()); }
  int64_t replays() const { return replays_; }
  double capture_seconds() const { return capture_seconds_; }  // host time spent capturing, all buckets

  // Called by the autograd function that stands for one graphed layer.
  at::Tensor forward(int64_t layer, const at::Tensor& x);
  std::vector<at::Tensor> backward(int64_t layer, const at::Tensor& grad_out);

 private:
  struct Bucket;
  at::Tensor run(int64_t layer, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                 const AttentionLayout& layout);
  static std::tuple<int64_t, int64_t> bucket_key(int64_t tokens, int64_t sequences);  // (T_b, S_cap)
  Bucket& bucket_for(int64_t tokens, int64_t sequences);
  void capture(Bucket& bucket);
  void check_trained_tensors_unmoved() const;

  CausalLM& model_;
  std::function<void(int64_t)> weights_ready_;
  int64_t first_layer_ = 0;
  int64_t layers_ = 0;
  bool recompute_ = false;
  std::vector<std::vector<at::Tensor>> trained_;     // per layer: what trains in it (the autograd inputs)
  std::vector<std::vector<std::pair<std::string, int>>> trained_names_;  // (name, 0 weight / 1 lora_A / 2 lora_B)
  std::vector<std::vector<void*>> trained_address_;  // where they were when the graphs were captured
  std::map<std::tuple<int64_t, int64_t>, std::unique_ptr<Bucket>> buckets_;  // (T_b, S_cap)
  Bucket* current_ = nullptr;  // the bucket of the micro-batch under way
  int64_t tokens_ = 0;         // its real token count
  int64_t replays_ = 0;
  double capture_seconds_ = 0;
  struct Device;  // the capture stream and memory pool (CUDA builds)
  std::unique_ptr<Device> device_;
};

}  // namespace pdsd
