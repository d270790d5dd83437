// Which samples form each micro-batch of each optimizer step, on each rank, and the tensors for them.
//
// Per epoch, samples are shuffled with (seed, epoch) so a resumed run sees the same order. They are
// grouped into micro-batches of `batch_size` samples (padded to the longest, right-padded) or, with
// packing, into rows of at most cutoff_len tokens filled in order (positions restart per sample,
// segment ids keep attention inside it), `batch_size` rows per micro-batch. Optimizer step s takes
// global micro-batches [s × ga × world, (s + 1) × ga × world); with several ranks their rows are dealt
// out to balance tokens per rank (every rank waits for the slowest), ga × batch_size rows each, so
// the step's samples are the same whatever the world size. The last micro-batches of an epoch that
// do not fill a whole step are dropped.
//
//   BatchPlan plan(examples, options);
//   trainer.train(total, [&](int64_t step) { return plan.micro_batches(step); });
#pragma once

#include <vector>

#include "worker/train/sft_examples.h"
#include "worker/train/trainer.h"

namespace pdsd {

class BatchPlan {
 public:
  BatchPlan(std::vector<SftExample> examples, BatchingOptions options);

  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  // Optimizer steps for the job: max_steps when positive, else ceil(epochs × steps per epoch).
  int64_t total_steps(double num_train_epochs, int64_t max_steps) const;
  std::vector<TrainBatch> micro_batches(int64_t step) const;
  // What micro_batches(step) would hold on this rank, without building it: per micro-batch, its
  // samples' tokens and how many samples (a padding-free micro-batch's length and sequence count).
  struct Shape {
    int64_t tokens = 0;
    int64_t sequences = 0;
  };
  std::vector<Shape> micro_batch_shapes(int64_t step) const;
  // Every sample once, in order, batch_size per batch, for evaluation.
  std::vector<TrainBatch> all_batches() const;
  size_t size() const { return examples_.size(); }

 private:
  using Row = std::vector<int64_t>;  // sample indices (one when padded, several when packed)
  const std::vector<std::vector<Row>>& epoch_batches(int64_t epoch) const;  // cached: valid until the next epoch's
  struct StepRows {
    std::vector<std::vector<Row>> micro_batches;  // this rank's
    int64_t step_loss_tokens = -1, step_real_tokens = -1;  // over every rank; -1: one rank, not counted here
  };
  StepRows rows_of_step(int64_t step) const;
  TrainBatch tensors(const std::vector<Row>& rows) const;

  std::vector<SftExample> examples_;
  BatchingOptions options_;
  int64_t steps_per_epoch_ = 0;
  mutable int64_t cached_epoch_ = -1;
  mutable std::vector<std::vector<Row>> cached_;
};

}  // namespace pdsd
