#include "worker/train/gradient_buckets.h"

#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include "common/error.h"

namespace pdsd {

namespace {

// Called by autograd once a leaf's .grad has been accumulated.
class BucketHook final : public torch::autograd::PostAccumulateGradHook {
 public:
  explicit BucketHook(std::function<void()> fire) : fire_(std::move(fire)) {}
  void operator()(const torch::autograd::Variable&) override { fire_(); }

 private:
  std::function<void()> fire_;
};

}  // namespace

GradientBuckets::GradientBuckets(const std::vector<TrainableParameter>& params, ReduceAsync reduce, double bucket_cap_mb)
    : params_(params), reduce_(std::move(reduce)) {
  PDSD_CHECK(bucket_cap_mb > 0, "ddp_bucket_cap_mb must be positive, got ", bucket_cap_mb);
  const auto cap = static_cast<int64_t>(bucket_cap_mb * 1024 * 1024);
  bucket_of_.resize(params_.size());
  int64_t bytes = 0;
  for (size_t k = params_.size(); k-- > 0;) {  // reverse: backward produces the last layers' gradients first
    const int64_t n = params_[k].tensor.numel() * 4;
    if (buckets_.empty() || (bytes + n > cap && !buckets_.back().params.empty())) {
      buckets_.emplace_back();
      bytes = 0;
    }
    buckets_.back().params.push_back(k);
    bucket_of_[k] = buckets_.size() - 1;
    bytes += n;
  }
  for (size_t k = 0; k < params_.size(); ++k) {
    torch::autograd::impl::set_post_acc_grad_hooks(params_[k].tensor,
                                                   std::make_unique<BucketHook>([this, k] { on_gradient(k); }));
  }
}

GradientBuckets::~GradientBuckets() {
  for (auto& p : params_) torch::autograd::impl::set_post_acc_grad_hooks(p.tensor, nullptr);
}

void GradientBuckets::arm() {
  for (auto& b : buckets_) b.ready = 0, b.issued = false, b.flat = at::Tensor();
  next_to_issue_ = 0;
  armed_ = true;
}

void GradientBuckets::on_gradient(size_t param) {
  if (!armed_) return;
  ++buckets_[bucket_of_[param]].ready;
  issue_ready_buckets();
}

void GradientBuckets::issue_ready_buckets() {
  while (next_to_issue_ < buckets_.size() && buckets_[next_to_issue_].ready == buckets_[next_to_issue_].params.size()) {
    issue(buckets_[next_to_issue_++]);
  }
}

void GradientBuckets::issue(Bucket& bucket) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> parts;
  for (size_t k : bucket.params) {
    const at::Tensor& t = params_[k].tensor;
    parts.push_back(t.grad().defined() ? t.grad().reshape({-1}).to(at::kFloat) : at::zeros({t.numel()}, t.options().dtype(at::kFloat)));
  }
  bucket.flat = at::cat(parts);
  bucket.pending = reduce_(bucket.flat);
  bucket.issued = true;
}

void GradientBuckets::finish() {
  PDSD_CHECK(armed_, "GradientBuckets::finish without arm()");
  armed_ = false;
  // Buckets whose parameters got no gradient (unused this step) never completed: issue them now, in order.
  while (next_to_issue_ < buckets_.size()) issue(buckets_[next_to_issue_++]);
  at::NoGradGuard no_grad;
  for (auto& b : buckets_) {
    b.pending.wait();
    int64_t offset = 0;
    for (size_t k : b.params) {
      at::Tensor& t = params_[k].tensor;
      const int64_t n = t.numel();
      at::Tensor sum = b.flat.narrow(0, offset, n).view_as(t);
      if (t.grad().defined()) {
        t.mutable_grad().copy_(sum);
      } else {
        t.mutable_grad() = sum.to(t.scalar_type()).clone();
      }
      offset += n;
    }
    b.flat = at::Tensor();
  }
}

}  // namespace pdsd
