// One worker's whole SFT job, from a validated JobConfig to files in output_dir:
//   model dir → weights (+ LoRA / freeze selection) → tokenizer + chat template → datasets →
//   examples (cutoff, masks) → batches (padded or packed, sharded by rank) → trainer → eval loss →
//   trainer_log.jsonl, all_results.json, and the model (HF dir for full/freeze, PEFT adapter for LoRA).
// worker/main.cpp calls it; tests call it too.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/job_config.h"
#include "common/worker_env.h"

namespace pdsd {

namespace dist {
class Collectives;
}

struct SftJobResult {
  int64_t steps = 0;
  int64_t train_samples = 0;
  int64_t eval_samples = 0;
  int64_t skipped_records = 0;
  double first_loss = 0;
  double final_loss = 0;
  double mean_loss = 0;  // over all steps, what transformers reports as train_loss
  double eval_loss = -1;  // -1: no eval split
  double runtime_s = 0;
  double tokens_per_s = 0;
  int64_t trainable_parameters = 0;
  int64_t total_parameters = 0;
  std::string artifact;  // what was written for the model
  std::string stopped;   // not empty when a stop signal ended training early (what happened, for the log)
  std::string last_checkpoint;
  int64_t failed_saves = 0;
};

// Called on every rank after every optimizer step (worker/control/progress_reporter.h sends it on).
using ProgressCallback = std::function<void(int64_t step, double loss, double tokens_per_s)>;

// `collectives` may be null for a single process; with world_size > 1 it must be given.
SftJobResult run_sft_job(const JobConfig& config, const WorkerEnv& env, dist::Collectives* collectives,
                         const ProgressCallback& on_progress = {});

}  // namespace pdsd
