// ZeRO-1/2 optimizer step: every rank keeps AdamW state (fp32 exp_avg, exp_avg_sq) for 1/N of the
// trainable parameters only. After backward, the flat gradient is reduce-scattered (each rank gets
// the summed gradient of its shard), clipped by the global norm (an all-reduce of the shards'
// squared norms), the shard is updated with libtorch's fused AdamW, and the updated shards are
// all-gathered back into every rank's full parameters. The numbers equal replicated DDP + AdamW; the
// optimizer state per rank falls as 1/N (tests/e2e/zero_matches_single_process.sh).
//
// Parameters are laid out flat in the order given, padded to a multiple of N (flat_shard.h); a shard
// may cut a parameter in two, which is fine for AdamW (elementwise) once decay is applied per piece.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <vector>

#include "worker/dist/collectives.h"
#include "worker/train/adamw.h"
#include "worker/train/trainer.h"

namespace pdsd {

struct ShardComm {
  int rank = 0;
  int world_size = 1;
  std::function<void(const at::Tensor& out_shard, const at::Tensor& in_flat)> reduce_scatter_sum;
  std::function<void(const at::Tensor& out_flat, const at::Tensor& in_shard)> all_gather;
  std::function<void(const at::Tensor&)> all_reduce_sum;
  // all_gather issued without waiting (ZeRO-3 prefetch); unset: all_gather, then nothing to wait for.
  std::function<dist::PendingCollective(const at::Tensor& out_flat, const at::Tensor& in_shard)> all_gather_async;
};

class ShardedAdamW {
 public:
  ShardedAdamW(const std::vector<TrainableParameter>& params, AdamWOptions options, ShardComm comm);

  // Uses and then clears each parameter's local (unreduced) gradient; returns the global grad norm
  // before clipping. Every rank must call it at the same step.
  double step(double lr, double max_grad_norm);
  int64_t state_bytes() const;
  // This rank's shard of master weights and state by name (views), for checkpoints.
  std::vector<std::pair<std::string, at::Tensor>> state_tensors() const;

 private:
  struct Piece {  // the part of one parameter inside this rank's shard
    at::Tensor master, exp_avg, exp_avg_sq, step;  // views into the shard buffers
    bool decay = true;
  };
  std::vector<TrainableParameter> params_;
  AdamWOptions options_;
  ShardComm comm_;
  int64_t total_ = 0, padded_ = 0, shard_ = 0;
  at::Tensor master_, exp_avg_, exp_avg_sq_, grad_shard_;  // [shard_] fp32
  std::vector<Piece> pieces_;
  std::vector<at::Tensor> piece_grads_;  // views into grad_shard_, aligned with pieces_
};

}  // namespace pdsd
