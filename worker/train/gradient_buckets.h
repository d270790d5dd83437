// Gradient reduction overlapped with backward, shared by DDP and ZeRO-1/2. Trainable parameters are
// grouped into buckets of about `bucket_cap_mb` of fp32 (transformers' ddp_bucket_cap_mb, 25 by
// default), in reverse order, which is roughly the order backward produces their gradients. While a
// backward runs armed, each parameter's post-accumulate-grad hook counts it in; as soon as a bucket is
// complete its gradients are concatenated into one flat buffer (zeros for a parameter with no gradient,
// zero padding up to a multiple of `pad_multiple`) and handed to `issue`, which starts the bucket's
// collective without waiting (DDP: all-reduce; ZeRO: reduce-scatter into this rank's shard). With
// NCCL the reduction of the last layers thus runs while backward computes the first ones. finish()
// issues what is left, waits for each bucket in order and hands its buffer to `complete`.
//
// Buckets are issued strictly in bucket order (a finished bucket waits for its predecessors), so every
// rank issues the same collectives in the same order whatever order its hooks fire in. A backward
// that is not armed just accumulates into .grad (DDP's no_sync, ZeRO-1's non-boundary micro-steps).
//
//   GradientBuckets buckets(trainable, 25, 1, {.issue = all_reduce_async, .complete = copy_back});
//   buckets.arm();  loss.backward();  buckets.finish();
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <optional>
#include <vector>

#include "worker/dist/collectives.h"
#include "worker/train/trainer.h"

namespace pdsd {

// The gradients of `weights`, one after another, flat, in `dtype` and zero-padded to `padded`
// elements, as one concatenation (one kernel on GPU) rather than a copy per weight. A weight without
// a gradient contributes zeros. What a bucket (below) or a ZeRO-3 unit reduces.
at::Tensor flat_gradients(const std::vector<at::Tensor>& weights, int64_t padded, at::ScalarType dtype);

class GradientBuckets {
 public:
  struct Handlers {
    // Starts bucket `b`'s collective on `flat` (padded). The handle keeps what it needs alive.
    std::function<dist::PendingCollective(size_t b, const at::Tensor& flat)> issue;
    // Once that collective is done: uses its result.
    std::function<void(size_t b, const at::Tensor& flat)> complete;
    // Drop each parameter's .grad as soon as its bucket is copied out (ZeRO-2: full gradients never
    // pile up); DDP keeps them and writes the sums back.
    bool free_gradients_on_issue = false;
    // The flat buffer's precision (job key communication_data_type). Unset: the gradients' own, the
    // bucket's weights' precision (bf16 replicas: half the bytes on the wire, no conversion); fp32
    // where a bucket mixes precisions.
    std::optional<at::ScalarType> reduce_dtype;
  };
  struct Bucket {
    std::vector<size_t> params;  // indices into the parameter list, in bucket (reverse) order
    int64_t numel = 0;           // without padding
    int64_t padded = 0;          // numel rounded up to a multiple of pad_multiple
    at::ScalarType dtype = at::kFloat;  // what it is reduced in
  };

  GradientBuckets(const std::vector<TrainableParameter>& params, double bucket_cap_mb, int64_t pad_multiple,
                  Handlers handlers);
  ~GradientBuckets();
  GradientBuckets(const GradientBuckets&) = delete;
  GradientBuckets& operator=(const GradientBuckets&) = delete;

  void arm();
  void finish();
  const std::vector<Bucket>& buckets() const { return buckets_; }

 private:
  struct InFlight {
    size_t ready = 0;
    at::Tensor flat;
    dist::PendingCollective pending;
  };
  void on_gradient(size_t param);
  void issue_ready_buckets();
  void issue(size_t b);

  std::vector<TrainableParameter> params_;
  Handlers handlers_;
  std::vector<Bucket> buckets_;
  std::vector<InFlight> in_flight_;
  std::vector<size_t> bucket_of_;
  std::vector<uint8_t> seen_;  // per parameter: its gradient was counted in this armed pass
  size_t next_to_issue_ = 0;
  bool armed_ = false;
};

}  // namespace pdsd
