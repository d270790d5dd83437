#include "worker/train/gradient_buckets.h"

#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <utility>

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

GradientBuckets::GradientBuckets(const std::vector<TrainableParameter>& params, double bucket_cap_mb,
                                 int64_t pad_multiple, Handlers handlers)
    : params_(params), handlers_(std::move(handlers)) {
  PDSD_CHECK(bucket_cap_mb > 0, "ddp_bucket_cap_mb must be positive, got ", bucket_cap_mb);
  PDSD_CHECK(pad_multiple >= 1 && handlers_.issue && handlers_.complete, "GradientBuckets needs handlers");
  const auto cap = static_cast<int64_t>(bucket_cap_mb * 1024 * 1024);
  bucket_of_.resize(params_.size());
  for (size_t k = params_.size(); k-- > 0;) {  // reverse: backward produces the last layers' gradients first
    const int64_t n = params_[k].tensor.numel();
    if (buckets_.empty() || ((buckets_.back().numel + n) * 4 > cap && !buckets_.back().params.empty())) {
      buckets_.emplace_back();
    }
    buckets_.back().params.push_back(k);
    buckets_.back().numel += n;
    bucket_of_[k] = buckets_.size() - 1;
  }
  for (auto& b : buckets_) {
    b.padded = (b.numel + pad_multiple - 1) / pad_multiple * pad_multiple;
    b.dtype = params_[b.params.front()].tensor.scalar_type();
    for (size_t k : b.params) {
      if (params_[k].tensor.scalar_type() != b.dtype) b.dtype = at::kFloat;
    }
    if (handlers_.reduce_dtype) b.dtype = *handlers_.reduce_dtype;
  }
  in_flight_.resize(buckets_.size());
  for (size_t k = 0; k < params_.size(); ++k) {
    torch::autograd::impl::set_post_acc_grad_hooks(params_[k].tensor,
                                                   std::make_unique<BucketHook>([this, k] { on_gradient(k); }));
  }
}

GradientBuckets::~GradientBuckets() {
  for (auto& p : params_) torch::autograd::impl::set_post_acc_grad_hooks(p.tensor, nullptr);
}

void GradientBuckets::arm() {
  for (auto& f : in_flight_) f = InFlight{};
  seen_.assign(params_.size(), 0);
  next_to_issue_ = 0;
  armed_ = true;
}

void GradientBuckets::on_gradient(size_t param) {
  if (!armed_) return;
  // A weight used in two places whose gradients reach it separately (e.g. inside and outside a
  // recomputed layer) fires twice: count it once, and refuse a gradient that comes after its
  // bucket was already reduced rather than lose it.
  const size_t b = bucket_of_[param];
  PDSD_CHECK(b >= next_to_issue_, "gradient bucket ", b, ": '", params_[param].name,
             "' received more gradient after its bucket was reduced (a weight whose gradient arrives in parts)");
  if (std::exchange(seen_[param], 1) != 0) return;
  ++in_flight_[b].ready;
  issue_ready_buckets();
}

void GradientBuckets::issue_ready_buckets() {
  while (next_to_issue_ < buckets_.size() && in_flight_[next_to_issue_].ready == buckets_[next_to_issue_].params.size()) {
    issue(next_to_issue_++);
  }
}

at::Tensor flat_gradients(const std::vector<at::Tensor>& weights, int64_t padded, at::ScalarType dtype) {
  at::NoGradGuard no_grad;
  const auto options = weights.front().options().dtype(dtype);
  std::vector<at::Tensor> parts;
  parts.reserve(weights.size() + 1);
  int64_t numel = 0;
  for (const auto& w : weights) {
    // One view per weight, and a conversion only where needed: a bucket of a small model's step is
    // hundreds of weights, and every operator here is host time the step waits for.
    const at::Tensor& g = w.grad();
    if (!g.defined()) {
      parts.push_back(at::zeros({w.numel()}, options));
    } else {
      at::Tensor flat = g.is_contiguous() ? g.view({-1}) : g.reshape({-1});
      parts.push_back(flat.scalar_type() == dtype ? flat : flat.to(dtype));
    }
    numel += w.numel();
  }
  if (padded > numel) parts.push_back(at::zeros({padded - numel}, options));
  return at::cat(parts);
}

void GradientBuckets::issue(size_t b) {
  const Bucket& bucket = buckets_[b];
  std::vector<at::Tensor> weights;
  weights.reserve(bucket.params.size());
  for (size_t k : bucket.params) weights.push_back(params_[k].tensor);
  at::Tensor flat = flat_gradients(weights, bucket.padded, bucket.dtype);
  if (handlers_.free_gradients_on_issue) {
    for (size_t k : bucket.params) params_[k].tensor.mutable_grad() = at::Tensor();
  }
  in_flight_[b].flat = flat;
  in_flight_[b].pending = handlers_.issue(b, flat);
}

void GradientBuckets::finish() {
  PDSD_CHECK(armed_, "GradientBuckets::finish without arm()");
  armed_ = false;
  // Buckets whose parameters got no gradient (unused this step) never completed: issue them now, in order.
  while (next_to_issue_ < buckets_.size()) issue(next_to_issue_++);
  at::NoGradGuard no_grad;
  for (size_t b = 0; b < buckets_.size(); ++b) {
    in_flight_[b].pending.wait();
    handlers_.complete(b, in_flight_[b].flat);
    in_flight_[b] = InFlight{};
  }
}

}  // namespace pdsd
