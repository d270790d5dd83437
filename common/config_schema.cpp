#include "common/config_schema.h"

#include <algorithm>

namespace pdsd::config {

namespace {
Range at_least(double v) { return {.min = v}; }
Range positive() { return {.min = 0.0, .min_exclusive = true}; }
Range between(double lo, double hi) { return {.min = lo, .max = hi}; }
Range fraction_open() { return {.min = 0.0, .max = 1.0, .max_exclusive = true}; }
}  // namespace

const std::vector<FieldSpec>& schema() {
  using J = JobConfig;
  static const std::vector<FieldSpec> fields = {
      // model
      {"model_name_or_path", "model", &J::model_name_or_path, {}, {}, false,
       "local Hugging Face model dir (config.json + *.safetensors + tokenizer.json)"},
      {"template", "model", &J::template_name, {}, {"", "qwen", "llama3", "llama2", "default", "alpaca", "chatglm3", "empty"},
       false, "chat template; empty: chosen from the model's family"},
      // data
      {"dataset", "data", &J::dataset, {}, {}, true, "dataset names from <dataset_dir>/dataset_info.json, comma-separated"},
      {"dataset_dir", "data", &J::dataset_dir, {}, {}, false, "folder holding dataset_info.json"},
      {"cutoff_len", "data", &J::cutoff_len, between(2, 1 << 20), {}, false, "maximum tokens per sample"},
      {"max_samples", "data", &J::max_samples, at_least(-1), {}, false, "use at most this many samples per dataset; -1: all"},
      {"val_size", "data", &J::val_size, at_least(0), {}, false, "held-out share (0..1) or count (>=1) for eval loss"},
      {"packing", "data", &J::packing, {}, {}, false, "pack samples into rows, no attention across samples"},
      {"padding_free", "data", &J::padding_free, {}, {}, false,
       "on GPU in bf16/fp16: each micro-batch's samples as one unpadded row, variable-length flash attention (same loss)"},
      {"on_bad_record", "data", &J::on_bad_record, {}, {"skip", "fail"}, false,
       "a malformed record: skip it (counted and reported with file and record) or fail the job"},
      {"train_on_prompt", "data", &J::train_on_prompt, {}, {}, false, "also compute loss on prompt tokens"},
      // method
      {"stage", "method", &J::stage, {}, {"sft"}, false, "training stage; pdsd does supervised fine-tuning"},
      {"do_train", "method", &J::do_train, {}, {}, false, "must be true"},
      {"finetuning_type", "method", &J::finetuning_type, {}, {"lora", "full", "freeze"}, false, "what trains"},
      {"lora_rank", "method", &J::lora_rank, between(1, 4096), {}, false, "LoRA rank r"},
      {"lora_alpha", "method", &J::lora_alpha, at_least(0), {}, false, "LoRA alpha; 0: 2 * lora_rank"},
      {"lora_dropout", "method", &J::lora_dropout, fraction_open(), {}, false, "dropout on the LoRA input"},
      {"lora_target", "method", &J::lora_target, {}, {}, true, "modules to adapt: all, or names such as q_proj,v_proj"},
      {"freeze_trainable_layers", "method", &J::freeze_trainable_layers, {}, {}, false,
       "freeze: the last N layers train (N>0) or the first -N (N<0)"},
      // parallelism
      {"zero_stage", "parallelism", &J::zero_stage, between(0, 3), {}, false, "0: DDP; 1/2/3: ZeRO stage"},
      {"gradient_checkpointing", "parallelism", &J::gradient_checkpointing, {}, {}, false,
       "recompute activations in backward (memory for one hidden state per layer, one extra forward); off: autograd keeps them, under ZeRO-3 too (a layer's gathered memory is given back after its forward and gathered again into place before its backward)"},
      {"cuda_graphs", "parallelism", &J::cuda_graphs, {}, {"auto", "true", "false"}, false,
       "each decoder layer's forward and backward replayed as CUDA graphs (one launch instead of dozens of operators; GPU, padding-free micro-batches, padded to one of 8 token counts per doubling, at most 12.5% more); under zero_stage 3 every layer then stays whole on each rank (within zero3_keep_gathered_mb; full fine-tuning: with its bf16 gradients, twice that for auto), the fp32 masters, optimizer state and gradient shards still 1/N; auto: on where they can run for layers under 128 MiB (host-bound models)"},
      {"ddp_backend", "parallelism", &J::ddp_backend, {}, {"auto", "nccl", "gloo"}, false,
       "collectives: nccl (GPUs), gloo (CPU; GPU tensors go through host copies); auto: nccl when every local rank has a GPU"},
      {"ddp_bucket_cap_mb", "parallelism", &J::ddp_bucket_cap_mb, positive(), {}, false,
       "DDP and ZeRO-1/2: MB of fp32 gradients per bucket, all-reduced or reduce-scattered during backward"},
      {"communication_data_type", "parallelism", &J::communication_data_type, {}, {"auto", "fp32", "bf16"}, false,
       "precision gradients are reduced in; auto: that of the weights computing them over NCCL (bf16/fp16 under ZeRO-2/3 with bf16/fp16), fp32 over Gloo"},
      {"zero2_local_gradients_mb", "parallelism", &J::zero2_local_gradients_mb, at_least(0), {}, false,
       "ZeRO-2 (and ZeRO-3's LoRA adapters): whole fp32 gradients of what trains up to this many MiB stay on each rank until the step's last micro-batch, one reduce-scatter per step instead of one per micro-batch; 0: every micro-batch"},
      {"zero3_gather_engine", "parallelism", &J::zero3_gather_engine, {}, {"auto", "sm", "copy"}, false,
       "ZeRO-3's layer all-gathers: sm (NCCL kernels) or copy (the GPUs' copy engines, leaving the SMs to compute; NCCL 2.28+, one node; elsewhere as sm); auto: copy over NCCL for layers of 128 MiB or more, else sm"},
      {"zero3_keep_gathered_mb", "parallelism", &J::zero3_keep_gathered_mb, at_least(0), {}, false,
       "ZeRO-3: gathered layers stay whole between their runs, up to this many MiB per GPU, until their weights change: a frozen (LoRA base) layer is gathered once per job, a trainable one once per optimizer step instead of twice per micro-batch (2048: about DeepSpeed's default stage3_max_live_parameters, 1e9, in bf16); 0: only at the turns of a micro-batch"},
      {"ddp_timeout", "parallelism", &J::ddp_timeout, between(1, 7 * 24 * 3600), {}, false,
       "seconds a collective may wait before the job stops with an error"},
      // optimizer
      {"learning_rate", "optimizer", &J::learning_rate, positive(), {}, false, "peak learning rate (AdamW)"},
      {"weight_decay", "optimizer", &J::weight_decay, at_least(0), {}, false, "AdamW decoupled weight decay"},
      {"adam_beta1", "optimizer", &J::adam_beta1, fraction_open(), {}, false, "AdamW beta1"},
      {"adam_beta2", "optimizer", &J::adam_beta2, fraction_open(), {}, false, "AdamW beta2"},
      {"adam_epsilon", "optimizer", &J::adam_epsilon, positive(), {}, false, "AdamW epsilon"},
      {"max_grad_norm", "optimizer", &J::max_grad_norm, at_least(0), {}, false, "clip the global gradient norm; 0: off"},
      // schedule
      {"per_device_train_batch_size", "schedule", &J::per_device_train_batch_size, between(1, 1 << 16), {}, false,
       "samples (or packed rows) per micro-step per rank"},
      {"per_device_eval_batch_size", "schedule", &J::per_device_eval_batch_size, between(1, 1 << 16), {}, false,
       "samples per eval step per rank"},
      {"gradient_accumulation_steps", "schedule", &J::gradient_accumulation_steps, between(1, 1 << 16), {}, false,
       "micro-steps per optimizer step"},
      {"lr_scheduler_type", "schedule", &J::lr_scheduler_type, {}, {"linear", "cosine", "constant", "constant_with_warmup"},
       false, "learning-rate schedule after warmup"},
      {"warmup_steps", "schedule", &J::warmup_steps, at_least(0), {}, false, "linear warmup steps"},
      {"warmup_ratio", "schedule", &J::warmup_ratio, between(0, 1), {}, false, "warmup as a share of all steps"},
      {"num_train_epochs", "schedule", &J::num_train_epochs, positive(), {}, false, "epochs (ignored when max_steps > 0)"},
      {"max_steps", "schedule", &J::max_steps, at_least(-1), {}, false, "optimizer steps; -1: from num_train_epochs"},
      {"seed", "schedule", &J::seed, between(0, 4294967295.0), {}, false, "seed for data order, dropout and init"},
      {"bf16", "schedule", &J::bf16, {}, {}, false, "bf16 compute with fp32 master weights"},
      {"fp16", "schedule", &J::fp16, {}, {}, false, "fp16 compute with loss scaling"},
      // checkpoint
      {"save_steps", "checkpoint", &J::save_steps, between(1, 1e12), {}, false, "save every N optimizer steps"},
      {"save_total_limit", "checkpoint", &J::save_total_limit, at_least(-1), {}, false, "keep the newest N; -1: all"},
      {"save_minutes", "checkpoint", &J::save_minutes, between(0, 1e6), {}, false,
       "also save when this many minutes passed since the last save (0: off); SIGUSR1 saves now, SIGTERM saves and stops"},
      {"resume_from_checkpoint", "checkpoint", &J::resume_from_checkpoint, {}, {}, false,
       "auto (newest valid), a step number, or a checkpoint path"},
      // metrics and logging
      {"logging_steps", "metrics", &J::logging_steps, between(1, 1e12), {}, false, "log every N optimizer steps"},
      {"log_level", "metrics", &J::log_level, {}, {"debug", "info", "warning", "warn", "error"}, false, "worker log level"},
      {"report_to", "metrics", &J::report_to, {}, {"none"}, false,
       "pdsd exports metrics to Prometheus (metrics_port); no other reporter"},
      {"metrics_port", "metrics", &J::metrics_port, between(0, 65535), {}, false, "Prometheus /metrics port; 0: off"},
      // output
      {"output_dir", "output", &J::output_dir, {}, {}, false, "where checkpoints, logs and the final model go"},
      {"overwrite_output_dir", "output", &J::overwrite_output_dir, {}, {}, false, "allow a non-empty output_dir"},
      {"export_size", "output", &J::export_size, positive(), {}, false,
       "GB per safetensors shard of the final model (model.safetensors.index.json when several)"},
  };
  return fields;
}

const FieldSpec* find_field(const std::string& name) {
  const auto& fields = schema();
  auto it = std::find_if(fields.begin(), fields.end(), [&](const FieldSpec& f) { return f.name == name; });
  return it == fields.end() ? nullptr : &*it;
}

const std::vector<std::string>& ignored_llamafactory_keys() {
  static const std::vector<std::string> keys = {
      "overwrite_cache", "preprocessing_num_workers", "dataloader_num_workers", "plot_loss",
      "trust_remote_code", "flash_attn", "ddp_find_unused_parameters"};
  return keys;
}

}  // namespace pdsd::config
