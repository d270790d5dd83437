#include "worker/train/sharded_adamw.h"

#include <ATen/core/grad_mode.h>

#include <cmath>

#include "common/error.h"

namespace pdsd {

ShardedAdamW::ShardedAdamW(const std::vector<TrainableParameter>& params, AdamWOptions options, ShardComm comm)
    : params_(params), options_(options), comm_(std::move(comm)) {
  at::NoGradGuard no_grad;
  PDSD_CHECK(!params_.empty() && comm_.world_size >= 1, "ShardedAdamW needs parameters and a world");
  for (const auto& p : params_) {
    PDSD_CHECK(p.tensor.scalar_type() == at::kFloat, "ShardedAdamW keeps fp32 master weights; ", p.name, " is ",
               p.tensor.scalar_type());
    total_ += p.tensor.numel();
  }
  shard_ = (total_ + comm_.world_size - 1) / comm_.world_size;
  padded_ = shard_ * comm_.world_size;
  const int64_t begin = comm_.rank * shard_, end = begin + shard_;
  auto opts = params_.front().tensor.options().requires_grad(false);
  master_ = at::zeros({shard_}, opts);
  exp_avg_ = at::zeros({shard_}, opts);
  exp_avg_sq_ = at::zeros({shard_}, opts);
  grad_shard_ = at::zeros({shard_}, opts);
  int64_t offset = 0;
  for (const auto& p : params_) {
    const int64_t n = p.tensor.numel();
    const int64_t lo = std::max(offset, begin), hi = std::min(offset + n, end);
    if (lo < hi) {
      Piece piece;
      piece.master = master_.narrow(0, lo - begin, hi - lo);
      piece.master.copy_(p.tensor.detach().reshape({-1}).narrow(0, lo - offset, hi - lo));
      piece.exp_avg = exp_avg_.narrow(0, lo - begin, hi - lo);
      piece.exp_avg_sq = exp_avg_sq_.narrow(0, lo - begin, hi - lo);
      piece.step = at::zeros({}, opts);
      piece.decay = p.decay;
      pieces_.push_back(piece);
      piece_grads_.push_back(grad_shard_.narrow(0, lo - begin, hi - lo));
    }
    offset += n;
  }
}

double ShardedAdamW::step(double lr, double max_grad_norm) {
  at::NoGradGuard no_grad;
  // 1. Each rank's local gradients, flat and padded; reduce-scatter sums them, this rank keeps its shard.
  std::vector<at::Tensor> flat_parts;
  for (auto& p : params_) {
    flat_parts.push_back(p.tensor.grad().defined() ? p.tensor.grad().reshape({-1}).to(at::kFloat)
                                                   : at::zeros({p.tensor.numel()}, master_.options()));
  }
  if (padded_ > total_) flat_parts.push_back(at::zeros({padded_ - total_}, master_.options()));
  at::Tensor flat = at::cat(flat_parts);
  comm_.reduce_scatter_sum(grad_shard_, flat);
  flat = at::Tensor();
  for (auto& p : params_) p.tensor.mutable_grad() = at::Tensor();

  // 2. The global norm from every shard's squared norm; clip as torch's clip_grad_norm_ does.
  at::Tensor sq = grad_shard_.to(at::kDouble).square().sum().reshape({1});
  comm_.all_reduce_sum(sq);
  const double norm = std::sqrt(sq.item<double>());
  if (max_grad_norm > 0) grad_shard_.mul_(std::min(1.0, max_grad_norm / (norm + 1e-6)));

  // 3. AdamW on this rank's shard, decay and no-decay pieces apart (the fused kernel takes one rate).
  for (bool with_decay : {true, false}) {
    std::vector<at::Tensor> p, g, m, v, s;
    for (size_t i = 0; i < pieces_.size(); ++i) {
      if (pieces_[i].decay != with_decay) continue;
      p.push_back(pieces_[i].master);
      g.push_back(piece_grads_[i]);
      m.push_back(pieces_[i].exp_avg);
      v.push_back(pieces_[i].exp_avg_sq);
      s.push_back(pieces_[i].step);
    }
    if (p.empty()) continue;
    at::_foreach_add_(s, 1.0);
    at::_fused_adamw_(p, g, m, v, {}, s, lr, options_.beta1, options_.beta2, with_decay ? options_.weight_decay : 0.0,
                      options_.eps, false, false);
  }

  // 4. Every rank gets every updated shard back into its full parameters.
  at::Tensor gathered = at::empty({padded_}, master_.options());
  comm_.all_gather(gathered, master_);
  int64_t offset = 0;
  for (auto& p : params_) {
    const int64_t n = p.tensor.numel();
    p.tensor.detach().copy_(gathered.narrow(0, offset, n).view_as(p.tensor));
    offset += n;
  }
  return norm;
}

int64_t ShardedAdamW::state_bytes() const {
  return exp_avg_.nbytes() + exp_avg_sq_.nbytes() + static_cast<int64_t>(pieces_.size()) * 4;
}

}  // namespace pdsd

namespace pdsd {

std::vector<std::pair<std::string, at::Tensor>> ShardedAdamW::state_tensors() const {
  std::vector<std::pair<std::string, at::Tensor>> out = {{"master", master_}, {"exp_avg", exp_avg_}, {"exp_avg_sq", exp_avg_sq_}};
  for (size_t i = 0; i < pieces_.size(); ++i) out.emplace_back("step." + std::to_string(i), pieces_[i].step);
  return out;
}

}  // namespace pdsd
