#include "worker/train/adamw.h"

#include <ATen/core/grad_mode.h>

#include "common/error.h"

namespace pdsd {

AdamW::AdamW(std::vector<at::Tensor> params, std::vector<bool> decay, AdamWOptions options)
    : params_(std::move(params)), decay_(std::move(decay)), options_(options) {
  PDSD_CHECK(decay_.size() == params_.size(), "AdamW: one decay flag per parameter");
  for (const auto& p : params_) {
    PDSD_CHECK(p.scalar_type() == at::kFloat, "AdamW keeps fp32 master weights; got ", p.scalar_type());
    exp_avg_.push_back(at::zeros_like(p));
    exp_avg_sq_.push_back(at::zeros_like(p));
    step_.push_back(at::zeros({}, p.options()));
  }
}

void adamw_update(const std::vector<AdamWSlot>& slots, double lr, const AdamWOptions& options) {
  at::NoGradGuard no_grad;
  for (bool with_decay : {true, false}) {
    std::vector<at::Tensor> params, grads, m, v, steps;
    for (const auto& s : slots) {
      if (s.decay != with_decay || !s.grad.defined()) continue;
      params.push_back(s.param);
      grads.push_back(s.grad);
      m.push_back(s.exp_avg);
      v.push_back(s.exp_avg_sq);
      steps.push_back(s.step);
    }
    if (params.empty()) continue;
    // As torch.optim.AdamW does: the counters advance first, the kernel reads them for bias correction.
    at::_foreach_add_(steps, 1.0);
    at::_fused_adamw_(params, grads, m, v, /*max_exp_avg_sqs=*/{}, steps, lr, options.beta1, options.beta2,
                      with_decay ? options.weight_decay : 0.0, options.eps, /*amsgrad=*/false, /*maximize=*/false);
  }
}

void AdamW::step(double lr) {
  std::vector<AdamWSlot> slots;
  for (size_t i = 0; i < params_.size(); ++i) {
    slots.push_back({params_[i], params_[i].grad(), exp_avg_[i], exp_avg_sq_[i], step_[i], decay_[i]});
  }
  adamw_update(slots, lr, options_);
  ++steps_;
}

void AdamW::zero_grad() {
  for (auto& p : params_) {
    if (p.grad().defined()) p.mutable_grad() = at::Tensor();
  }
}

int64_t AdamW::state_bytes() const {
  int64_t bytes = 0;
  for (size_t i = 0; i < params_.size(); ++i) bytes += exp_avg_[i].nbytes() + exp_avg_sq_[i].nbytes() + step_[i].nbytes();
  return bytes;
}

}  // namespace pdsd

namespace pdsd {

std::vector<std::pair<std::string, at::Tensor>> AdamW::state_tensors() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (size_t i = 0; i < params_.size(); ++i) {
    out.emplace_back("exp_avg." + std::to_string(i), exp_avg_[i]);
    out.emplace_back("exp_avg_sq." + std::to_string(i), exp_avg_sq_[i]);
    out.emplace_back("step." + std::to_string(i), step_[i]);
  }
  return out;
}

}  // namespace pdsd
