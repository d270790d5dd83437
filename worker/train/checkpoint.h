// Checkpoints under <output_dir>/checkpoint-<step>/ that never lose work: a save either publishes a
// complete, verifiable checkpoint or leaves the previous ones untouched, and a checkpoint saved at one
// world size and ZeRO stage resumes at any other.
//
// Layout (docs/checkpoints.md):
//   model.safetensors              rank 0: the trainable fp32 weights by name (LoRA: "<module>.lora_A")
//   optimizer-rank<r>.safetensors  AdamW state as "<kind>@<global offset>" pieces (checkpoint_shards.h):
//                                  rank 0 only when replicated, every rank's shard under ZeRO
//   rng_state_<r>.safetensors      every rank: its CPU (and GPU) random generator
//   trainer_state.json             rank 0: global_step, epoch, data position, scheduler, world size,
//                                  ZeRO stage, the flat layout (names, global shapes, offsets), base
//                                  model and LoRA settings, the config hash and the settings it covers
//   manifest.json                  rank 0, last: every file's size and CRC-32 (checkpoint_manifest.h)
//
// Saving is collective. Every rank writes into <output_dir>/.tmp-checkpoint-<step>/ (each file
// fsynced); the ranks agree (one all-reduce) that all of them succeeded; then rank 0 writes
// trainer_state.json and the manifest, fsyncs, renames the folder into place, fsyncs output_dir,
// points `latest` at it and prunes beyond save_total_limit. A failure on any rank (a full disk, say)
// removes the temporary folder on every rank's word and is reported; training goes on and the next
// save tries again. A rank that dies mid-save publishes nothing: its peers' collective fails.
//
// Test-only faults (PDSD_FAULT_INJECT, read once per process):
//   save_enospc_after_bytes:N   checkpoint writes fail with ENOSPC once this rank has written N bytes
//   crash_rank<R>_during_save[:S]  rank R is killed (SIGKILL) 64 bytes into its files of the save at
//                               step S (default: the first save)
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <nlohmann/json.hpp>
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
  // The largest of every rank's value (an all-reduce with max; the value itself for one process): how
  // ranks agree that a save worked everywhere, and on the checkpoint to resume from.
  std::function<int64_t(int64_t)> all_max = [](int64_t v) { return v; };
  at::Device device = at::kCPU;  // its random generator is saved too when it is a GPU
  // Recorded in trainer_state.json, for a resume's checks and for `pdsd-worker export`:
  std::string base_model;      // absolute model_name_or_path
  nlohmann::json lora;         // {r, lora_alpha, lora_dropout, target}; null unless LoRA
  nlohmann::json scheduler;    // the LR schedule's settings
  nlohmann::json settings;     // what changes the math (model, data, seed, batch, schedule, ...)
  int64_t steps_per_epoch = 0;
};

struct SaveOutcome {
  bool saved = false;
  std::string dir;    // the published checkpoint
  std::string error;  // why not, naming the file (same text on the rank that failed; a summary elsewhere)
};

// Collective: every rank calls it at the same step.
SaveOutcome save_checkpoint(const CheckpointContext& ctx, int64_t step, const std::vector<TrainableParameter>& trainable,
                            const std::vector<std::pair<std::string, at::Tensor>>& optimizer_state);

// "auto"/"true" → the newest checkpoint in output_dir that validates (sizes and CRC-32s), logging
// each newer one it skips and why; "" when there is none. "<N>" → checkpoint-N there; else a path:
// throws InputError naming the file when it does not validate. Collective: rank 0 lists, the ranks
// agree on each candidate and checksum a share of its files each (one process: all of them).
std::string choose_checkpoint(const CheckpointContext& ctx, const std::string& resume_from_checkpoint);

nlohmann::json read_trainer_state(const std::string& dir);

// Restores weights, optimizer state and RNG in place, resharding when the checkpoint was saved at
// another world size or ZeRO stage; returns its global step. Warns when the settings that change the
// math differ from the saved ones.
int64_t load_checkpoint(const CheckpointContext& ctx, const std::string& dir, const std::vector<TrainableParameter>& trainable,
                        const std::vector<std::pair<std::string, at::Tensor>>& optimizer_state);

// Only the trainable weights (any world size, any stage), e.g. for export.
void load_checkpoint_weights(const std::string& dir, const std::vector<TrainableParameter>& trainable);

}  // namespace pdsd
