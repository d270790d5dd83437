// ZeRO-1/2 optimizer: every rank keeps fp32 master weights and AdamW state (exp_avg, exp_avg_sq) for
// 1/N of the trainable parameters only, and never a reduced full gradient.
//
// Gradients are reduced during backward, bucket by bucket (gradient_buckets.h): each bucket's flat
// gradient, padded to a multiple of N, is reduce-scattered (in the precision `reduce_dtype` names, by
// default the gradients' own), and rank r keeps chunk r of every bucket, summed into its fp32 gradient
// shard. ZeRO-1 reduces once per optimizer step (the step's last
// micro-batch; earlier ones accumulate into .grad, with no communication); ZeRO-2 reduces every
// micro-batch and drops each .grad as soon as its bucket is copied out, so full gradients never pile
// up across micro-batches (unless they are small and fp32: then once per step, as ZeRO-1;
// local_gradient_bytes below). The step: clip by the global norm (an all-reduce of the shards' squared
// norms), libtorch's fused AdamW on the shard, then each bucket's updated chunks all-gathered back
// into every rank's full parameters. The numbers equal replicated DDP + AdamW within float32 rounding
// (tests/e2e/sharded_training_matches_single_process.sh); the state per rank falls as 1/N.
//
// The whole parameters every rank computes with may be in a lower precision than the fp32 masters
// (ZeRO-2 with bf16: 2 bytes a weight instead of 4, and no per-use cast); the updated chunks are then
// all-gathered in that precision, half the bytes.
//
// A chunk may cut a parameter in two, which is fine for AdamW (elementwise) once decay is applied per
// piece. Checkpoints see this rank's pieces as "<kind>@<offset>" in the trainable parameters' flat
// order (checkpoint_shards.h), so a checkpoint does not depend on the bucket layout or world size.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "worker/dist/collectives.h"
#include "worker/train/adamw.h"
#include "worker/train/trainer.h"

namespace pdsd {

class GradientBuckets;

struct ShardComm {
  int rank = 0;
  int world_size = 1;
  std::function<void(const at::Tensor& out_shard, const at::Tensor& in_flat)> reduce_scatter_sum;
  std::function<void(const at::Tensor& out_flat, const at::Tensor& in_shard)> all_gather;
  std::function<void(const at::Tensor&)> all_reduce_sum;
  // Issued without waiting (ZeRO-3's prefetch, ZeRO-1/2's buckets during backward).
  std::function<dist::PendingCollective(const at::Tensor& out_flat, const at::Tensor& in_shard)> all_gather_async;
  std::function<dist::PendingCollective(const at::Tensor& out_shard, const at::Tensor& in_flat)> reduce_scatter_async;
  // Memory whose all-gathers may run on copy engines (Collectives::gather_memory); unset: at::empty.
  std::function<at::Tensor(int64_t numel, const at::TensorOptions& options)> gather_memory;
};

struct ShardedAdamWOptions {
  AdamWOptions adam;
  int stage = 2;               // 1: reduce at the step's last micro-batch; 2: at every micro-batch (but see below)
  double bucket_cap_mb = 25;   // job key ddp_bucket_cap_mb
  // ZeRO-2 reduces at every micro-batch so that whole gradients never pile up. Whole gradients of at
  // most this many bytes (LoRA adapters, a few trained layers) cost less memory than the meetings
  // cost time: every reduce-scatter makes the ranks wait for the slowest, once per micro-batch
  // instead of once per step. Such gradients, when fp32 (bf16 ones would round as they accumulate),
  // stay on the rank until the step's last micro-batch, as under ZeRO-1. Job key zero2_local_gradients_mb.
  int64_t local_gradient_bytes = int64_t{256} << 20;
  // Precision of the gradient reduce-scatter (job key communication_data_type); unset: the
  // gradients' own. The reduced chunks are summed into the fp32 gradient shard either way.
  std::optional<at::ScalarType> reduce_dtype;
  // For parameters kept in a lower precision than fp32: their full-precision starting value by name
  // (the memory-mapped checkpoint tensor), where the fp32 master starts from. Unset: the parameter.
  std::function<at::Tensor(const std::string& name)> full_precision_source;
};

class ShardedAdamW {
 public:
  ShardedAdamW(const std::vector<TrainableParameter>& params, ShardedAdamWOptions options, ShardComm comm);
  ~ShardedAdamW();

  // Around every micro-batch's backward (trainer hooks); `last`: the optimizer step's last one.
  void before_backward(bool last);
  void after_backward(bool last);
  // Clips and updates this rank's shard, gathers the updated parameters; returns the global grad
  // norm before clipping. Every rank must call it at the same step.
  // The norm is a one-element tensor on the shard's device, not read back (the host does not wait).
  at::Tensor step(double lr, double max_grad_norm);
  // ZeRO-2 with whole gradients above options.local_gradient_bytes; else once per step.
  bool reduces_every_micro_batch() const { return reduces_every_micro_batch_; }
  int64_t gradient_bytes() const { return gradient_bytes_; }  // whole gradients of what trains
  // After the master shards were overwritten (resume): gathers them into every rank's parameters.
  void masters_changed();
  // The fp32 masters whole, on the CPU, by name (for export when the parameters are rounded copies).
  // Every rank must call it; only where `keep` is true are the copies made and returned. `dtype`:
  // gather them rounded to that precision (the export's: half the bytes through the GPU-to-host copy).
  std::map<std::string, at::Tensor> gather_full_on_cpu(bool keep, at::ScalarType dtype = at::kFloat);
  int64_t state_bytes() const;
  // This rank's pieces as "param@<offset>", "exp_avg@<offset>", "exp_avg_sq@<offset>" (views of the
  // master weights and moments) and "step@<parameter index>", for checkpoints.
  std::vector<std::pair<std::string, at::Tensor>> state_tensors() const;

 private:
  struct Piece {  // the part of one parameter inside this rank's chunk of one bucket
    size_t param = 0;
    int64_t global_offset = 0;  // in the trainable parameters' flat order (checkpoints)
    at::Tensor master, grad, exp_avg, exp_avg_sq, step;  // views into the shard buffers
  };
  bool reduces_now(bool last) const { return last || reduces_every_micro_batch_; }
  // All-gathers every bucket's chunks (in `type`, or each bucket's parameter dtype when unset) and
  // hands each whole parameter to `sink`, bucket by bucket.
  void gather(std::optional<at::ScalarType> type, const std::function<void(size_t param, const at::Tensor& whole)>& sink);

  std::vector<TrainableParameter> params_;
  ShardedAdamWOptions options_;
  ShardComm comm_;
  std::unique_ptr<GradientBuckets> buckets_;
  std::vector<int64_t> chunk_, chunk_offset_;  // per bucket: this rank's chunk length and place in the shard
  std::vector<at::Tensor> reduced_;            // per bucket: the reduce-scatter's output, until added in
  at::Tensor master_, exp_avg_, exp_avg_sq_, grad_shard_;  // this rank's shard, fp32
  std::vector<Piece> pieces_;
  int64_t gradient_bytes_ = 0;
  bool reduces_every_micro_batch_ = true;
};

}  // namespace pdsd
