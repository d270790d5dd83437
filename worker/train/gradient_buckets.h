// DDP's gradient reduction overlapped with backward. Trainable parameters are grouped into buckets of
// about `bucket_cap_mb` (transformers' ddp_bucket_cap_mb, 25 by default), in reverse order, which is
// roughly the order backward produces their gradients. During the last micro-batch's backward of an
// optimizer step, each parameter's post-accumulate-grad hook counts it in; as soon as a bucket is
// complete its gradients are copied into one flat fp32 buffer and an all-reduce is issued without
// waiting (Collectives::all_reduce_async), so with NCCL the reduction of the last layers runs while
// backward computes the first ones. finish() issues what is left, waits, and copies the sums back.
//
// Buckets are issued strictly in bucket order (a finished bucket waits for its predecessors), so every
// rank issues the same collectives in the same order whatever order its hooks fire in. Parameters
// with no gradient this step (unused) count as zeros. Earlier micro-batches just accumulate, as
// DDP's no_sync does: no communication until the step's last one.
//
//   GradientBuckets buckets(trainable, reduce_async, 25);
//   buckets.arm();                   // before the step's last backward
//   loss.backward();
//   buckets.finish();                // every parameter's .grad now holds the sum over ranks
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <vector>

#include "worker/dist/collectives.h"
#include "worker/train/trainer.h"

namespace pdsd {

class GradientBuckets {
 public:
  using ReduceAsync = std::function<dist::PendingCollective(const at::Tensor& flat)>;

  GradientBuckets(const std::vector<TrainableParameter>& params, ReduceAsync reduce, double bucket_cap_mb);
  ~GradientBuckets();
  GradientBuckets(const GradientBuckets&) = delete;
  GradientBuckets& operator=(const GradientBuckets&) = delete;

  void arm();
  void finish();
  size_t bucket_count() const { return buckets_.size(); }

 private:
  struct Bucket {
    std::vector<size_t> params;  // indices into params_
    size_t ready = 0;
    at::Tensor flat;
    dist::PendingCollective pending;
    bool issued = false;
  };
  void on_gradient(size_t param);
  void issue_ready_buckets();
  void issue(Bucket& bucket);

  std::vector<TrainableParameter> params_;
  ReduceAsync reduce_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;
  size_t next_to_issue_ = 0;
  bool armed_ = false;
};

}  // namespace pdsd
