#include "worker/train/sharded_adamw.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <deque>

#include "common/error.h"
#include "worker/train/flat_shard.h"
#include "worker/train/gradient_buckets.h"

namespace pdsd {

ShardedAdamW::ShardedAdamW(const std::vector<TrainableParameter>& params, ShardedAdamWOptions options, ShardComm comm)
    : params_(params), options_(options), comm_(std::move(comm)) {
  at::NoGradGuard no_grad;
  PDSD_CHECK(!params_.empty() && comm_.world_size >= 1, "ShardedAdamW needs parameters and a world");
  PDSD_CHECK(comm_.reduce_scatter_async && comm_.all_gather_async && comm_.all_reduce_sum, "ShardedAdamW needs collectives");
  std::vector<int64_t> global_offset;
  int64_t total = 0;
  for (const auto& p : params_) {
    PDSD_CHECK(at::isFloatingType(p.tensor.scalar_type()), "ShardedAdamW trains floating-point weights; ", p.name,
               " is ", p.tensor.scalar_type());
    global_offset.push_back(total);
    total += p.tensor.numel();
    gradient_bytes_ += p.tensor.numel() * static_cast<int64_t>(p.tensor.element_size());
  }
  // Gradients kept across micro-batches accumulate in .grad, which bf16 would round (as ZeRO-1 keeps
  // fp32 weights for): only fp32 ones stay local.
  const bool all_fp32 = std::all_of(params_.begin(), params_.end(),
                                    [](const TrainableParameter& p) { return p.tensor.scalar_type() == at::kFloat; });
  reduces_every_micro_batch_ = options_.stage >= 2 && (gradient_bytes_ > options_.local_gradient_bytes || !all_fp32);
  GradientBuckets::Handlers handlers;
  handlers.free_gradients_on_issue = true;
  handlers.reduce_dtype = options_.reduce_dtype;
  handlers.issue = [this](size_t b, const at::Tensor& flat) {
    reduced_[b] = at::empty({chunk_[b]}, flat.options());
    return comm_.reduce_scatter_async(reduced_[b], flat);
  };
  handlers.complete = [this](size_t b, const at::Tensor&) {
    grad_shard_.narrow(0, chunk_offset_[b], chunk_[b]).add_(reduced_[b]);
    reduced_[b] = at::Tensor();
  };
  buckets_ = std::make_unique<GradientBuckets>(params_, options_.bucket_cap_mb, comm_.world_size, std::move(handlers));

  // This rank's chunk of every bucket, one after another, is its shard.
  std::vector<FlatShardLayout> layouts;
  int64_t shard = 0;
  for (const auto& bucket : buckets_->buckets()) {
    std::vector<int64_t> numels;
    for (size_t k : bucket.params) numels.push_back(params_[k].tensor.numel());
    layouts.emplace_back(numels, comm_.rank, comm_.world_size);
    chunk_.push_back(layouts.back().shard);
    chunk_offset_.push_back(shard);
    shard += layouts.back().shard;
  }
  reduced_.resize(chunk_.size());
  auto opts = params_.front().tensor.options().dtype(at::kFloat).requires_grad(false);
  master_ = at::zeros({shard}, opts);
  exp_avg_ = at::zeros({shard}, opts);
  exp_avg_sq_ = at::zeros({shard}, opts);
  grad_shard_ = at::zeros({shard}, opts);
  for (size_t b = 0; b < layouts.size(); ++b) {
    for (const auto& lp : layouts[b].pieces) {
      Piece piece;
      piece.param = buckets_->buckets()[b].params[lp.tensor];
      piece.global_offset = global_offset[piece.param] + lp.tensor_offset;
      const int64_t at_ = chunk_offset_[b] + lp.shard_offset;
      piece.master = master_.narrow(0, at_, lp.length);
      const TrainableParameter& p = params_[piece.param];
      const at::Tensor source = p.tensor.scalar_type() != at::kFloat && options_.full_precision_source
                                    ? options_.full_precision_source(p.name)
                                    : p.tensor.detach();
      PDSD_CHECK(source.numel() == p.tensor.numel(), "the full-precision source of ", p.name, " has ", source.numel(),
                 " elements, the parameter ", p.tensor.numel());
      piece.master.copy_(source.reshape({-1}).narrow(0, lp.tensor_offset, lp.length));
      piece.grad = grad_shard_.narrow(0, at_, lp.length);
      piece.exp_avg = exp_avg_.narrow(0, at_, lp.length);
      piece.exp_avg_sq = exp_avg_sq_.narrow(0, at_, lp.length);
      piece.step = at::zeros({}, opts);
      pieces_.push_back(piece);
    }
  }
}

ShardedAdamW::~ShardedAdamW() = default;

void ShardedAdamW::before_backward(bool last) {
  if (reduces_now(last)) buckets_->arm();
}

void ShardedAdamW::after_backward(bool last) {
  if (reduces_now(last)) buckets_->finish();
}

at::Tensor ShardedAdamW::step(double lr, double max_grad_norm) {
  at::NoGradGuard no_grad;
  // 1. The global norm from every shard's squared norm; clip as torch's clip_grad_norm_ does.
  // (The shard's norm is reduced in fp32, as torch's clip_grad_norm_ does per tensor: a float64 copy
  // of a 7B model's shard would be 28 GiB on 2 GPUs.)
  at::Tensor sq = grad_shard_.norm().to(at::kDouble).square().reshape({1});
  comm_.all_reduce_sum(sq);
  const at::Tensor norm = sq.sqrt();
  if (max_grad_norm > 0) grad_shard_.mul_(clip_coefficient(norm, max_grad_norm).to(at::kFloat));

  // 2. AdamW on this rank's shard.
  std::vector<AdamWSlot> slots;
  for (const Piece& p : pieces_) {
    slots.push_back({p.master, p.grad, p.exp_avg, p.exp_avg_sq, p.step, params_[p.param].decay});
  }
  adamw_update(slots, lr, options_.adam);
  grad_shard_.zero_();

  masters_changed();
  return norm;
}

void ShardedAdamW::masters_changed() {
  gather({}, [this](size_t k, const at::Tensor& whole) {  // in place, under gather's no-grad guard
    const at::Tensor& t = params_[k].tensor;
    t.copy_(whole.view(t.sizes()));
  });
}

std::map<std::string, at::Tensor> ShardedAdamW::gather_full_on_cpu(bool keep, at::ScalarType dtype) {
  std::map<std::string, at::Tensor> out;
  gather(dtype, [&](size_t k, const at::Tensor& whole) {
    if (keep) out[params_[k].name] = whole.view(params_[k].tensor.sizes()).to(at::kCPU, /*non_blocking=*/false, /*copy=*/true);
  });
  return out;
}

// Every rank gets every bucket's chunks back, whole: in the parameters' own precision when updating
// them (bf16 replicas: half the bytes), with the next bucket's all-gather in flight while one is
// copied out.
void ShardedAdamW::gather(std::optional<at::ScalarType> type,
                          const std::function<void(size_t param, const at::Tensor& whole)>& sink) {
  at::NoGradGuard no_grad;
  const auto& buckets = buckets_->buckets();
  struct Gather {
    size_t bucket;
    at::Tensor out, in;
    dist::PendingCollective pending;
  };
  std::deque<Gather> in_flight;
  auto copy_out = [&] {
    Gather& g = in_flight.front();
    g.pending.wait();
    int64_t offset = 0;
    for (size_t k : buckets[g.bucket].params) {
      const int64_t n = params_[k].tensor.numel();
      sink(k, g.out.narrow(0, offset, n));
      offset += n;
    }
    in_flight.pop_front();
  };
  for (size_t b = 0; b < buckets.size(); ++b) {
    at::ScalarType t = type.value_or(params_[buckets[b].params.front()].tensor.scalar_type());
    for (size_t k : buckets[b].params) {
      if (params_[k].tensor.scalar_type() != t) t = at::kFloat;  // mixed precisions: gather the masters as they are
    }
    Gather g{b, at::empty({buckets[b].padded}, master_.options().dtype(t)), master_.narrow(0, chunk_offset_[b], chunk_[b]).to(t), {}};
    g.pending = comm_.all_gather_async(g.out, g.in);
    in_flight.push_back(std::move(g));
    if (in_flight.size() > 2) copy_out();
  }
  while (!in_flight.empty()) copy_out();
}

int64_t ShardedAdamW::state_bytes() const {
  return exp_avg_.nbytes() + exp_avg_sq_.nbytes() + static_cast<int64_t>(pieces_.size()) * 4;
}

std::vector<std::pair<std::string, at::Tensor>> ShardedAdamW::state_tensors() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const Piece& p : pieces_) {
    const std::string at_ = "@" + std::to_string(p.global_offset);
    out.emplace_back("param" + at_, p.master);
    out.emplace_back("exp_avg" + at_, p.exp_avg);
    out.emplace_back("exp_avg_sq" + at_, p.exp_avg_sq);
    out.emplace_back("step@" + std::to_string(p.param), p.step);
  }
  return out;
}

}  // namespace pdsd
