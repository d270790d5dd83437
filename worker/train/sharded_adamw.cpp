#include "worker/train/sharded_adamw.h"

#include <ATen/core/grad_mode.h>

#include <cmath>

#include "common/error.h"
#include "worker/train/flat_shard.h"

namespace pdsd {

ShardedAdamW::ShardedAdamW(const std::vector<TrainableParameter>& params, AdamWOptions options, ShardComm comm)
    : params_(params), options_(options), comm_(std::move(comm)) {
  at::NoGradGuard no_grad;
  PDSD_CHECK(!params_.empty() && comm_.world_size >= 1, "ShardedAdamW needs parameters and a world");
  std::vector<int64_t> numels;
  for (const auto& p : params_) {
    PDSD_CHECK(p.tensor.scalar_type() == at::kFloat, "ShardedAdamW keeps fp32 master weights; ", p.name, " is ",
               p.tensor.scalar_type());
    numels.push_back(p.tensor.numel());
  }
  FlatShardLayout layout(numels, comm_.rank, comm_.world_size);
  total_ = layout.total, shard_ = layout.shard, padded_ = layout.padded;
  auto opts = params_.front().tensor.options().requires_grad(false);
  master_ = at::zeros({shard_}, opts);
  exp_avg_ = at::zeros({shard_}, opts);
  exp_avg_sq_ = at::zeros({shard_}, opts);
  grad_shard_ = at::zeros({shard_}, opts);
  for (const auto& lp : layout.pieces) {
    const auto& p = params_[lp.tensor];
    Piece piece;
    piece.master = master_.narrow(0, lp.shard_offset, lp.length);
    piece.master.copy_(p.tensor.detach().reshape({-1}).narrow(0, lp.tensor_offset, lp.length));
    piece.exp_avg = exp_avg_.narrow(0, lp.shard_offset, lp.length);
    piece.exp_avg_sq = exp_avg_sq_.narrow(0, lp.shard_offset, lp.length);
    piece.step = at::zeros({}, opts);
    piece.decay = p.decay;
    pieces_.push_back(piece);
    piece_grads_.push_back(grad_shard_.narrow(0, lp.shard_offset, lp.length));
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

  // 3. AdamW on this rank's shard.
  std::vector<AdamWSlot> slots;
  for (size_t i = 0; i < pieces_.size(); ++i) {
    const Piece& p = pieces_[i];
    slots.push_back({p.master, piece_grads_[i], p.exp_avg, p.exp_avg_sq, p.step, p.decay});
  }
  adamw_update(slots, lr, options_);

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
