// AdamW with decoupled weight decay, the same update as torch.optim.AdamW(fused=True): it calls
// libtorch's fused kernel (_fused_adamw_) over all parameters of a device at once. Parameters are the
// fp32 master copies; state (exp_avg, exp_avg_sq, step) is fp32 and lives beside them, so a ZeRO
// stage can give each rank only its shard of parameters and state.
//
// Weight decay applies to the parameters marked `decay` (transformers' Trainer exempts biases and
// norm weights); the others get the same update without it.
//
//   AdamW opt(params, decay, {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01});
//   opt.step(lr);   // uses p.grad()
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

namespace pdsd {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

// One tensor's view of an AdamW update: the fp32 weights (or a shard's piece of them), its gradient
// and state. ZeRO's sharded steps build these over their shards.
struct AdamWSlot {
  at::Tensor param, grad, exp_avg, exp_avg_sq, step;
  bool decay = true;
};

// torch.optim.AdamW(fused=True)'s update over all slots, decay and no-decay groups apart (the fused
// kernel takes one weight decay per call).
void adamw_update(const std::vector<AdamWSlot>& slots, double lr, const AdamWOptions& options);

class AdamW {
 public:
  AdamW(std::vector<at::Tensor> params, std::vector<bool> decay, AdamWOptions options);
  // One update with learning rate `lr`; parameters whose grad is undefined are skipped this step.
  void step(double lr);
  void zero_grad();
  int64_t steps_taken() const { return steps_; }
  // Bytes of optimizer state (exp_avg + exp_avg_sq + step counters), for memory reports.
  int64_t state_bytes() const;
  // The state tensors by name (views: copying into them restores the state), for checkpoints.
  std::vector<std::pair<std::string, at::Tensor>> state_tensors() const;

 private:
  std::vector<at::Tensor> params_, exp_avg_, exp_avg_sq_, step_;
  std::vector<bool> decay_;
  AdamWOptions options_;
  int64_t steps_ = 0;
};

}  // namespace pdsd
