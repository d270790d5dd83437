// Checkpoints under <output_dir>/checkpoint-<step>/, written so that a crash never leaves a broken one
// under that name, and read back for an exact resume.
//
// Layout: model.safetensors (rank 0: the trainable fp32 weights by name — LoRA adapters as
// "<module>.lora_A"), optimizer-rank<r>.safetensors (each rank its optimizer state, which under ZeRO is
// its shard, plus its CPU RNG state), trainer_state.json (rank 0: global_step, world_size, zero_stage,
// finetuning_type). Every rank writes into <output_dir>/.tmp-checkpoint-<step>; after a barrier rank 0
// writes trainer_state.json last, fsyncs, renames the folder into place, updates `latest`, and
// removes the oldest checkpoints beyond save_total_limit. A folder without trainer_state.json is never
// taken for a checkpoint.
//
// Resume needs the same world size and ZeRO stage (resharding to another world size is not built yet:
// the error says so and names both).
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "worker/train/trainer.h"

namespace pdsd {

struct CheckpointContext {
  std::string output_dir;
  int rank = 0;
  int world_size = 1;
  int64_t zero_stage = 0;
  std::string finetuning_type;
  int64_t save_total_limit = -1;
  std::function<void()> barrier;  // every rank, or a no-op for one process
  at::Device device = at::kCPU;   // its random generator is saved too when it is a GPU
};

void save_checkpoint(const CheckpointContext& ctx, int64_t step, const std::vector<TrainableParameter>& trainable,
                     const std::vector<std::pair<std::string, at::Tensor>>& optimizer_state);

// "auto"/"true" → the newest complete checkpoint in output_dir (empty when there is none); "<N>" →
// checkpoint-N there; else a path. Throws InputError for a named checkpoint that is missing or incomplete.
std::string resolve_checkpoint(const std::string& output_dir, const std::string& resume_from_checkpoint);

// Restores weights, optimizer state and RNG in place; returns the checkpoint's global step.
int64_t load_checkpoint(const CheckpointContext& ctx, const std::string& dir, const std::vector<TrainableParameter>& trainable,
                        const std::vector<std::pair<std::string, at::Tensor>>& optimizer_state);

}  // namespace pdsd
