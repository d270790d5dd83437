// The job configuration: one flat YAML file with LLaMA-Factory's key names (so their files work),
// plus pdsd's own keys (zero_stage, metrics_port, ...), plus `key=value` overrides from the command line.
//
//   JobConfig c = load_job_config("configs/sft.yaml", {"learning_rate=1e-4", "max_steps=20"});
//
// Loading validates everything before any process starts: an unknown key (with a did-you-mean), a
// wrong type, an out-of-range value or an impossible combination throws ConfigError naming the key,
// the file and the line. docs/config.md lists every key.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/error.h"

namespace pdsd {

class ConfigError : public InputError {
 public:
  using InputError::InputError;
};

// Where a key's value came from, for error messages: "configs/sft.yaml:12" or "command line".
struct ConfigOrigin {
  std::string file;
  int line = 0;  // 1-based; 0 for the command line or a default
  std::string describe() const;
};

struct JobConfig {
  // model
  std::string model_name_or_path;
  std::string template_name;  // YAML key `template`; empty: chosen from the model's family
  // data
  std::string dataset;  // comma-separated names from <dataset_dir>/dataset_info.json
  std::string dataset_dir = "data";
  int64_t cutoff_len = 2048;
  int64_t max_samples = -1;  // -1: all
  double val_size = 0.0;     // fraction in [0,1) or a whole number of samples
  std::string on_bad_record = "skip";  // skip | fail
  bool packing = false;
  bool padding_free = true;  // takes effect on GPU with bf16/fp16 compute (flash attention)
  bool train_on_prompt = false;
  // method
  std::string stage = "sft";
  bool do_train = true;
  std::string finetuning_type = "lora";  // lora | full | freeze
  int64_t lora_rank = 8;
  double lora_alpha = 0.0;  // 0: 2 * lora_rank, as LLaMA-Factory
  double lora_dropout = 0.0;
  std::string lora_target = "all";
  int64_t freeze_trainable_layers = 2;  // >0: the last N layers train; <0: the first N
  // parallelism
  int64_t zero_stage = 0;  // 0: DDP (replicated); 1, 2, 3: ZeRO stages
  bool gradient_checkpointing = true;
  // Decoder layers replayed as CUDA graphs (worker/model/layer_graphs.h): for small models, whose
  // steps are bound by the host's per-operator cost rather than by the GPU. auto | true | false
  // (common/cuda_graphs_choice.h).
  std::string cuda_graphs = "auto";
  std::string ddp_backend = "auto";  // auto | nccl | gloo
  double ddp_bucket_cap_mb = 25;  // DDP gradient bucket size (transformers' name and default)
  std::string communication_data_type = "auto";  // auto | fp32 | bf16: precision gradients are reduced in
  double zero2_local_gradients_mb = 256;  // ZeRO-2: whole gradients up to this size are reduced once per step
  std::string zero3_gather_engine = "auto";  // auto | sm | copy: what moves ZeRO-3's layer all-gathers (copy: copy engines)
  // ZeRO-3: gathered layers stay whole until their weights change, up to this size. 2048 MiB is about
  // the 1e9 parameters in bf16 that DeepSpeed keeps live by default (stage3_max_live_parameters);
  // measured on 2×H200 at 0.5B, 1.00–1.30× the speed of 0 for 0.6–0.8 GiB per GPU (bench/README.md).
  double zero3_keep_gathered_mb = 2048;
  int64_t ddp_timeout = 1800;  // seconds a collective may wait before the job stops with an error
  // optimizer
  double learning_rate = 5e-5;
  double weight_decay = 0.0;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_epsilon = 1e-8;
  double max_grad_norm = 1.0;
  // schedule
  int64_t per_device_train_batch_size = 8;
  int64_t per_device_eval_batch_size = 8;
  int64_t gradient_accumulation_steps = 1;
  std::string lr_scheduler_type = "linear";
  int64_t warmup_steps = 0;
  double warmup_ratio = 0.0;
  double num_train_epochs = 3.0;
  int64_t max_steps = -1;
  int64_t seed = 42;
  bool bf16 = false;
  bool fp16 = false;
  // checkpoint
  int64_t save_steps = 500;
  int64_t save_total_limit = -1;  // -1: keep all
  double save_minutes = 0;        // also save when this many minutes passed since the last save; 0: off
  std::string resume_from_checkpoint;  // "" | auto | <step> | <path>
  // metrics and logging
  int64_t logging_steps = 10;
  std::string log_level = "info";
  std::string report_to = "none";
  int64_t metrics_port = 0;  // 0: no Prometheus endpoint
  // output
  std::string output_dir;
  bool overwrite_output_dir = false;
  double export_size = 5;  // GB per safetensors shard of the exported model, as LLaMA-Factory's export_size

  // Where each key that was given came from (absent: default).
  std::map<std::string, ConfigOrigin> origins;
  std::string source_file;

  // The resolved configuration as flat YAML, every key, in schema order (saved with each run).
  std::string to_yaml() const;
};

// Reads `path`, applies `overrides` ("key=value", value parsed as a YAML scalar), validates.
JobConfig load_job_config(const std::string& path, const std::vector<std::string>& overrides = {});

// The same from YAML text (for tests and for configs embedded in other files); `name` is used in messages.
JobConfig parse_job_config(const std::string& yaml_text, const std::string& name,
                           const std::vector<std::string>& overrides = {});

// Every key pdsd accepts, in schema order (for docs and did-you-mean).
std::vector<std::string> job_config_keys();

// docs/config.md's key table, generated from the schema (a test keeps the doc in step).
std::string job_config_reference_markdown();

}  // namespace pdsd
