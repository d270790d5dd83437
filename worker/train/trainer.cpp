#include "worker/train/trainer.h"

#include <ATen/core/grad_mode.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include <cmath>
#include <fstream>
#include <utility>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/log.h"
#include "worker/train/causal_lm_loss.h"

namespace pdsd {

namespace {
std::vector<at::Tensor> tensors_of(const std::vector<TrainableParameter>& params) {
  std::vector<at::Tensor> out;
  for (const auto& p : params) out.push_back(p.tensor);
  return out;
}
std::vector<bool> decay_of(const std::vector<TrainableParameter>& params) {
  std::vector<bool> out;
  for (const auto& p : params) out.push_back(p.decay);
  return out;
}

// Tokens with a label after the shift, on the labels' device (not read back yet).
at::Tensor predicted_tokens(const at::Tensor& labels) {
  return labels.narrow(1, 1, labels.size(1) - 1).ne(kIgnoreIndex).sum();
}
}  // namespace

at::Tensor clip_coefficient(const at::Tensor& norm, double max_norm) {
  return (max_norm / (norm + 1e-6)).clamp_max(1.0);
}

at::Tensor clip_grad_norm(const std::vector<TrainableParameter>& params, double max_norm) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (const auto& p : params) {
    if (p.tensor.grad().defined()) grads.push_back(p.tensor.grad());
  }
  if (grads.empty()) return at::Tensor();
  // Multi-tensor kernels: a few launches for hundreds of gradients, as torch's clip_grad_norm_ on GPU.
  at::Tensor total = at::stack(at::_foreach_norm(grads, 2, at::kFloat)).norm();
  if (max_norm > 0) at::_foreach_mul_(grads, clip_coefficient(total, max_norm));
  return total;
}

Trainer::Trainer(CausalLM& model, std::vector<TrainableParameter> trainable, TrainerOptions options)
    : model_(model),
      trainable_(std::move(trainable)),
      options_(std::move(options)) {
  started_ = now();
  PDSD_CHECK(!trainable_.empty() || options_.sharded_step, "nothing to train: no trainable parameter");
  PDSD_CHECK(!options_.all_reduce_sum || options_.gradients_reduced_in_backward || options_.sharded_step,
             "data parallelism needs a gradient reduction: DDP's buckets or a ZeRO sharded_step");
  if (!options_.sharded_step) optimizer_ = std::make_unique<AdamW>(tensors_of(trainable_), decay_of(trainable_), options_.adam);
}

std::chrono::steady_clock::time_point Trainer::now() const {
  return options_.clock ? options_.clock() : std::chrono::steady_clock::now();
}

std::vector<std::pair<std::string, at::Tensor>> Trainer::optimizer_state() const {
  return optimizer_ ? optimizer_->state_tensors() : options_.sharded_state_tensors();
}

int64_t Trainer::optimizer_state_bytes() const {
  return optimizer_ ? optimizer_->state_bytes() : options_.sharded_state_bytes();
}

LossSum Trainer::loss_of(const at::Tensor& hidden, const TrainBatch& batch, bool count_tokens) const {
  if (batch.loss_positions.defined()) {
    return causal_lm_loss_at(hidden, model_.lm_head_weight(), batch.loss_positions, batch.loss_targets,
                             options_.loss_chunk_tokens);
  }
  return causal_lm_loss(hidden, model_.lm_head_weight(), batch.labels, options_.loss_chunk_tokens, count_tokens);
}

Trainer::QueuedStep Trainer::queue_step(const std::vector<TrainBatch>& micro_batches) {
  PDSD_CHECK(!micro_batches.empty(), "an optimizer step needs at least one micro-batch");
  QueuedStep q;
  q.paced_from = now();
  // Normalise by the step's total predicted tokens so accumulating micro-batches equals one batch.
  // Batches that list their loss positions (BatchPlan's do) need no read-back from the GPU; others
  // cost one, before any forward. With data parallelism the count over all ranks normalises every
  // rank's loss: the batch plan states it (step_loss_tokens), or the ranks sum theirs.
  int64_t real_tokens = 0, step_tokens = 0;
  std::vector<at::Tensor> counts_per_batch;
  for (const auto& b : micro_batches) {
    real_tokens += b.real_tokens;
    if (b.loss_positions.defined()) step_tokens += b.loss_positions.size(0);
    else counts_per_batch.push_back(predicted_tokens(b.labels));
  }
  if (!counts_per_batch.empty()) step_tokens += at::stack(counts_per_batch).sum().item<int64_t>();
  const TrainBatch& first = micro_batches.front();
  const bool totals_known = first.step_loss_tokens >= 0 && first.step_real_tokens >= 0;
  if (totals_known) {
    PDSD_CHECK(first.step_loss_tokens >= step_tokens && first.step_real_tokens >= real_tokens,
               "optimizer step ", steps_done_ + 1, ": the batch plan's step totals (", first.step_loss_tokens,
               " labelled positions) are below this rank's own (", step_tokens, ")");
    step_tokens = first.step_loss_tokens;
    real_tokens = first.step_real_tokens;
  } else if (options_.all_reduce_sum) {
    at::Tensor counts = at::tensor({static_cast<double>(step_tokens), static_cast<double>(real_tokens)}, at::kDouble);
    options_.all_reduce_sum(counts);
    step_tokens = static_cast<int64_t>(counts[0].item<double>());
    real_tokens = static_cast<int64_t>(counts[1].item<double>());
  }
  PDSD_CHECK(step_tokens > 0, "optimizer step ", steps_done_ + 1, " has no token with a label (all -100)");
  model_.set_training(true);
  model_.cast_lora_for_step();
  at::Tensor loss_total;  // the step's loss sum, accumulated in float64 where the loss is
  if (options_.before_forward) options_.before_forward();
  for (size_t i = 0; i < micro_batches.size(); ++i) {
    const auto& b = micro_batches[i];
    at::Tensor hidden = model_.hidden_states(b.tokens);
    LossSum loss = loss_of(hidden, b, /*count_tokens=*/false);
    const bool last = i + 1 == micro_batches.size();
    if (options_.before_backward) options_.before_backward(last);
    (loss.sum / static_cast<double>(step_tokens)).backward();
    if (options_.after_backward) options_.after_backward(last);
    at::Tensor part = loss.sum.detach().to(at::kDouble);
    loss_total = loss_total.defined() ? loss_total + part : part;
  }
  model_.drop_lora_casts();
  // Data parallelism: gradients were reduced during backward (DDP, ZeRO-1/2); the logged loss is the
  // global one, summed where it is (on the GPU with NCCL). The ranks' save requests ride along as two
  // flags (request >= 1, request >= 2), whose sums give the largest.
  q.own_request = options_.poll_request ? options_.poll_request() : 0;
  at::Tensor sums = loss_total.reshape({1});
  if (options_.all_reduce_sum) {
    const auto opts = loss_total.options();
    sums = at::cat({sums, at::full({1}, q.own_request >= 1 ? 1.0 : 0.0, opts),
                    at::full({1}, q.own_request >= 2 ? 1.0 : 0.0, opts)});
    options_.all_reduce_sum(sums);
  }
  if (options_.after_forward) options_.after_forward();
  q.record.step = steps_done_ + 1;
  q.record.lr = options_.schedule.at(steps_done_);
  q.record.tokens = real_tokens;
  q.step_tokens = step_tokens;
  // The optimizer step is queued before anything is read back, and the read-back itself is a copy
  // queued behind it: the host waits only when finish_step asks for the figures.
  at::Tensor norm;
  if (options_.sharded_step) {
    norm = options_.sharded_step(q.record.lr, options_.max_grad_norm);
  } else {
    norm = clip_grad_norm(trainable_, options_.max_grad_norm);
    optimizer_->step(q.record.lr);
    optimizer_->zero_grad();
  }
  if (!norm.defined()) norm = at::zeros({1}, sums.options());
  const at::Tensor figures = at::cat({sums, norm.reshape({1}).to(sums.scalar_type())});
  if (figures.is_cpu()) {
    q.figures = figures;
  } else {
    q.figures = at::empty(figures.sizes(), figures.options().device(at::kCPU).pinned_memory(true));
    q.figures.copy_(figures, /*non_blocking=*/true);
    const c10::impl::VirtualGuardImpl device(figures.device().type());
    q.copied.emplace(figures.device().type(), c10::EventFlag::BACKEND_DEFAULT);  // timed: see finish_step
    q.copied->record(device.getStream(figures.device()));
  }
  ++steps_done_;
  q.queued_at = now();
  return q;
}

StepRecord Trainer::finish_step(QueuedStep& q, const c10::Event* previous_end) {
  const bool waited = q.copied && !q.copied->query();
  if (q.copied) q.copied->synchronize();
  // On the host clock a step ends when the host had to wait for it, or, when it was over before the
  // host asked (on the CPU always: the host computed it), when the host had queued it all. Never
  // before the step it follows ended.
  q.done_at = std::max(q.paced_from, waited ? now() : q.queued_at);
  // Its time: on a GPU, the device's time between the previous step's figures and its own (both
  // copies are timed events), which is the pace whether the host or the device set it; on the CPU,
  // or for a step with none before it, the host clock's.
  double seconds = std::chrono::duration<double>(q.done_at - q.paced_from).count();
  if (previous_end != nullptr && q.copied) {
    try {
      seconds = previous_end->elapsedTime(*q.copied) / 1000.0;
    } catch (const c10::Error& e) {  // a figure, not the training: keep the host clock's, say so once
      static bool warned = false;
      if (!std::exchange(warned, true)) log::warn("step timing on the device failed (", e.what_without_backtrace(), "); tokens/s from the host clock");
    }
  }
  StepRecord r = q.record;
  const double* v = q.figures.data_ptr<double>();
  r.request = options_.all_reduce_sum ? (v[2] > 0 ? 2 : v[1] > 0 ? 1 : 0) : q.own_request;
  r.grad_norm = v[q.figures.numel() - 1];
  r.loss = v[0] / static_cast<double>(q.step_tokens);
  r.tokens_per_s = static_cast<double>(r.tokens) / std::max(1e-9, seconds);
  r.elapsed_s = std::chrono::duration<double>(q.done_at - started_).count();
  if (!std::isfinite(r.loss)) throw Error(str("loss is ", r.loss, " at step ", r.step, ": training diverged"));
  return r;
}

StepRecord Trainer::step(const std::vector<TrainBatch>& micro_batches) {
  QueuedStep q = queue_step(micro_batches);
  return finish_step(q, /*previous_end=*/nullptr);
}

std::vector<StepRecord> Trainer::train(int64_t total_steps,
                                       const std::function<std::vector<TrainBatch>(int64_t)>& batches) {
  std::ofstream log_file;
  if (!options_.log_path.empty()) {
    log_file.open(options_.log_path, std::ios::app);
    PDSD_CHECK(log_file.good(), "cannot write ", options_.log_path);
  }
  std::vector<StepRecord> records;
  // Each step's time runs from the end of the one before (batch building, logging and all), so
  // tokens/s is the pipeline's pace, not one step's time from its first launch (finish_step says
  // what a step's end is).
  auto pace = now();
  int64_t deferred_request = 0;  // read back with a step that had the next one queued behind it
  bool stop = false;
  std::optional<c10::Event> last_end;  // the read-back event of the step handled last (GPU)
  auto handle = [&](QueuedStep& q, bool settled) {
    q.paced_from = pace;
    StepRecord r = finish_step(q, last_end ? &*last_end : nullptr);
    pace = q.done_at;
    last_end = std::move(q.copied);
    // A request is acted on only at a settled step: there the state is that step's own.
    if (settled) {
      r.request = std::max(r.request, deferred_request);
      deferred_request = 0;
    } else {
      deferred_request = std::max(deferred_request, r.request);
      r.request = 0;
    }
    records.push_back(r);
    if (options_.on_step_end) options_.on_step_end(r);
    if (options_.on_progress) options_.on_progress(r.step, r.loss, r.tokens_per_s);
    if (r.step % options_.logging_steps == 0 || r.step == total_steps) {
      nlohmann::json line = {{"step", r.step}, {"loss", r.loss}, {"lr", r.lr}, {"grad_norm", r.grad_norm},
                             {"tokens", r.tokens}, {"tokens_per_s", r.tokens_per_s}, {"elapsed", r.elapsed_s}};
      if (log_file.is_open()) log_file << line.dump() << "\n" << std::flush;
      if (options_.log_to_console) log::info("step ", r.step, "/", total_steps, " | loss ", r.loss, " | lr ", r.lr, " | grad norm ", r.grad_norm,
                " | ", static_cast<int64_t>(r.tokens_per_s), " tokens/s");
    }
    if (options_.should_stop && options_.should_stop()) stop = true;
  };
  // If queuing a step throws (bad batch, out of memory), the step in flight was applied but is not
  // logged: the job fails there anyway, and nothing saves after an error.
  std::optional<QueuedStep> in_flight;
  while (steps_done_ < total_steps && !stop) {
    if (options_.on_step_begin) options_.on_step_begin(steps_done_ + 1);
    QueuedStep q = queue_step(batches(steps_done_));
    if (in_flight) {
      handle(*in_flight, /*settled=*/false);
      in_flight.reset();
    }
    const int64_t step = q.record.step;
    const bool settle = step == total_steps || deferred_request > 0 || stop ||
                        (options_.settle_after && options_.settle_after(step));
    if (settle) handle(q, /*settled=*/true);
    else in_flight.emplace(std::move(q));
  }
  return records;
}

double Trainer::evaluate(const std::vector<TrainBatch>& batches) {
  at::NoGradGuard no_grad;
  model_.set_training(false);
  double sum = 0;
  int64_t tokens = 0;
  if (options_.before_forward) options_.before_forward();
  for (const auto& b : batches) {
    LossSum loss = loss_of(model_.hidden_states(b.tokens), b, /*count_tokens=*/true);
    sum += loss.sum.item<double>();
    tokens += loss.tokens;
  }
  if (options_.after_forward) options_.after_forward();
  return tokens > 0 ? sum / static_cast<double>(tokens) : 0.0;
}

}  // namespace pdsd
