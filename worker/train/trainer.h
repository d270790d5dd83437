// The training loop of one process, read top to bottom like llm.c's: for each optimizer step, take
// its micro-batches, count the predicted tokens of all of them, run forward + backward on each
// (loss sum / that count, so accumulation equals one big batch), clip the gradient norm, update with
// AdamW at the scheduled rate, log one line. Data parallelism slots in between backward and clipping
// (DDP's gradient buckets finish there; a ZeRO step reduces, clips and updates its shard) without
// changing this shape.
//
// Steps are pipelined one deep: train() queues step s + 1 on the device before it reads back step s's
// loss and norm, so the GPU goes from one step's update into the next step's forward without waiting
// for the host to learn the last step's figures and build the next one's batches (a small model's
// step otherwise drains the GPU at every boundary). A step whose on_step_end reads the state (a
// scheduled checkpoint: TrainerOptions::settle_after), the last one, and a step with a save request
// are settled: nothing is queued after them until they end. A save request polled during step s is
// read back with s, after s + 1 was queued: it rides on s + 1's record, which is then settled, so the
// ranks still agree on the step and the checkpoint holds exactly that step's state.
//
//   Trainer trainer(model, trainable, options);
//   trainer.train(total_steps, [&](int64_t step) { return loader.micro_batches(step); });
#pragma once

#include <ATen/ATen.h>

#include <c10/core/Event.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "worker/model/causal_lm.h"
#include "worker/train/adamw.h"
#include "worker/train/causal_lm_loss.h"
#include "worker/train/lr_schedule.h"

namespace pdsd {

struct TrainBatch {
  TokenBatch tokens;
  at::Tensor labels;        // [B, T], -100 where no loss
  // Flat indices into the B × T positions of those that predict a label (label at t+1 not -100),
  // and those labels: built on the host with the batch, so the loss projects only these positions
  // onto the vocabulary and a step's token count needs no read-back from the GPU. Optional.
  at::Tensor loss_positions;  // [P] int64
  at::Tensor loss_targets;    // [P] int64
  int64_t real_tokens = 0;  // non-padding input tokens, for throughput
  // The optimizer step's totals over every rank, when the batch plan knows them (it deals every
  // rank's rows, so it does): labelled positions, which normalise the loss, and real tokens. With
  // them a data-parallel step needs no all-reduce of counts before its first forward. -1: unknown.
  int64_t step_loss_tokens = -1;
  int64_t step_real_tokens = -1;
};

struct TrainableParameter {
  std::string name;
  at::Tensor tensor;  // fp32 leaf with requires_grad
  bool decay = true;
};

struct StepRecord {
  int64_t step = 0;  // 1-based, as transformers logs it
  double loss = 0;   // mean over the step's predicted tokens
  double lr = 0;     // the rate this step used
  double grad_norm = 0;  // before clipping
  int64_t tokens = 0;    // non-padding input tokens in the step
  double tokens_per_s = 0;
  double elapsed_s = 0;
  int64_t request = 0;   // the largest TrainerOptions::poll_request over the ranks this step
};

struct TrainerOptions {
  LrSchedule schedule;
  AdamWOptions adam;
  double max_grad_norm = 1.0;  // 0: no clipping
  int64_t logging_steps = 10;
  int64_t loss_chunk_tokens = 1024;
  std::string log_path;  // trainer_log.jsonl; empty: none
  // Data parallelism: sums a tensor over all ranks in place. When set, the step's loss is summed
  // across ranks (and its token count, unless the batches carry the step's totals); the gradients are reduced by DDP's buckets
  // (gradients_reduced_in_backward) or by ZeRO (sharded_step), so every rank applies the same global update.
  std::function<void(at::Tensor&)> all_reduce_sum;
  bool log_to_console = true;  // rank 0 logs; the others stay quiet
  // ZeRO-1/2/3: when set, reduction, clipping and the update happen in this sharded step instead
  // (worker/train/sharded_adamw.h); the trainer then keeps no optimizer state of its own. It returns
  // the global gradient norm before clipping as a one-element tensor, not read back to the host yet.
  std::function<at::Tensor(double lr, double max_grad_norm)> sharded_step;
  std::function<int64_t()> sharded_state_bytes;
  std::function<std::vector<std::pair<std::string, at::Tensor>>()> sharded_state_tensors;
  // ZeRO-3: called before a step's (or an evaluation's) first forward and after its last backward
  // (or the evaluation), to gather and free the weights used across the whole pass.
  std::function<void()> before_forward;
  std::function<void()> after_forward;
  // Around every micro-batch's backward; `last`: the optimizer step's last one. Gradient buckets
  // (gradient_buckets.h) are armed and finished here: DDP's and ZeRO-1's on the last micro-batch
  // only, ZeRO-2's on every one (unless its gradients are small: sharded_adamw.h).
  std::function<void(bool last)> before_backward;
  std::function<void(bool last)> after_backward;
  // DDP: set when the buckets above reduce the gradients (the trainer checks that some reduction exists).
  bool gradients_reduced_in_backward = false;
  // Called before every optimizer step with its 1-based number (the profiler starts here).
  std::function<void(int64_t step)> on_step_begin;
  // Called after every optimizer step with its record (checkpoints hang here).
  std::function<void(const StepRecord& record)> on_step_end;
  // Polled once per step on every rank, just before the step's loss is summed over the ranks; the
  // largest value polled on any rank (0, 1 or 2) comes back as StepRecord::request. It rides on the
  // loss's all-reduce, so ranks agree on a save request (save_signals.h) without a collective of its own.
  std::function<int64_t()> poll_request;
  // Called on every rank after every optimizer step with its record's figures (progress reports).
  std::function<void(int64_t step, double loss, double tokens_per_s)> on_progress;
  // Asked after on_step_end (and the step's log line): true ends train() early (a stop signal), after
  // the step in flight, if any.
  std::function<bool()> should_stop;
  // Asked with a step's number when it is queued: true when on_step_end of that step reads the model
  // or optimizer state (a scheduled checkpoint), so the next step must not be queued before this one
  // has ended and been handled. Unset: only the steps train() settles anyway (see the top).
  std::function<bool(int64_t step)> settle_after;
  // The host clock a step's time is read from (steady_clock::now when unset). Tests set one that
  // advances by a fixed amount per step, so the pacing rule is checked exactly, not against a
  // loaded machine's wall clock.
  std::function<std::chrono::steady_clock::time_point()> clock;
};


class Trainer {
 public:
  Trainer(CausalLM& model, std::vector<TrainableParameter> trainable, TrainerOptions options);

  // One optimizer step, settled: the host waits for its figures before returning.
  StepRecord step(const std::vector<TrainBatch>& micro_batches);
  // Steps up to total_steps, pipelined one deep (see the top); on_step_end sees every step in order.
  std::vector<StepRecord> train(int64_t total_steps, const std::function<std::vector<TrainBatch>(int64_t)>& batches);

  // Mean loss over batches without updating anything (eval / val_size split).
  double evaluate(const std::vector<TrainBatch>& batches);
  // Bytes of optimizer state this rank holds (all of it when replicated, its shard under ZeRO).
  int64_t optimizer_state_bytes() const;
  // This rank's optimizer state as named views (replicated: all of it; ZeRO: its shard).
  std::vector<std::pair<std::string, at::Tensor>> optimizer_state() const;
  // Continue from a checkpoint: the next step is steps_done + 1.
  void set_steps_done(int64_t steps_done) { steps_done_ = steps_done; }
  int64_t steps_done() const { return steps_done_; }

 private:
  LossSum loss_of(const at::Tensor& hidden, const TrainBatch& batch, bool count_tokens) const;

  // A step on its way: everything is queued on the device, up to the copy of its figures (loss sums,
  // save flags, gradient norm) into pinned host memory, which `copied` marks.
  struct QueuedStep {
    StepRecord record;         // step, lr and tokens known when queued; the rest when finished
    int64_t step_tokens = 0;   // labelled positions over all ranks: the loss's divisor
    int64_t own_request = 0;   // this rank's poll (the answer without data parallelism)
    at::Tensor figures;        // host copy: [loss sum, (flag >= 1, flag >= 2,) norm]
    std::optional<c10::Event> copied;  // timed (CUDA: cudaEventDefault)
    std::chrono::steady_clock::time_point paced_from;  // the step's time runs from here to its end
    std::chrono::steady_clock::time_point queued_at;   // when everything of it was queued
    std::chrono::steady_clock::time_point done_at;     // its end, as finish_step saw it
  };
  QueuedStep queue_step(const std::vector<TrainBatch>& micro_batches);
  // Waits for the copy and fills in the record (loss, norm, the ranks' largest request, tokens/s);
  // `previous_end`: the read-back event of the step handled just before, whose end starts this one's
  // time (null: none, or no device).
  StepRecord finish_step(QueuedStep& queued, const c10::Event* previous_end);

  CausalLM& model_;
  std::vector<TrainableParameter> trainable_;
  TrainerOptions options_;
  std::unique_ptr<AdamW> optimizer_;  // replicated update; null when options_.sharded_step is set
  int64_t steps_done_ = 0;
  std::chrono::steady_clock::time_point now() const;
  std::chrono::steady_clock::time_point started_;
};

// Global L2 norm of the gradients, and scale them so it is at most max_norm, as torch's
// clip_grad_norm_ does: the coefficient is computed and applied on the gradients' device, so the host
// does not wait for backward to end before it queues the optimizer step. Returns the norm before
// clipping, a 0-dim fp32 tensor on that device (undefined: no gradient), not read back yet.
at::Tensor clip_grad_norm(const std::vector<TrainableParameter>& params, double max_norm);

// min(1, max_norm / (norm + 1e-6)) on norm's device (torch's clip_grad_norm_'s clip_coef_clamped).
at::Tensor clip_coefficient(const at::Tensor& norm, double max_norm);

}  // namespace pdsd
