// `pdsd-worker export`'s settings, in LLaMA-Factory's export YAML (llamafactory-cli export) key names
// plus two of pdsd's, from a YAML file and/or key=value arguments:
//
//   pdsd-worker export merge.yaml                       # as `llamafactory-cli export merge.yaml`
//   pdsd-worker export checkpoint=out/checkpoint-200 export_dir=merged export_size=2
//
//   model_name_or_path    base Hugging Face model dir (default: the one the checkpoint recorded); a
//                         pdsd checkpoint dir here is read as `checkpoint` (full / freeze runs)
//   adapter_name_or_path  a pdsd checkpoint dir of a LoRA run, or a PEFT adapter dir, to merge
//   checkpoint            (pdsd) a checkpoint-<step> dir, saved at any world size and ZeRO stage
//   export_dir            where to write (required)
//   export_size           GB per safetensors shard (default 5, as LLaMA-Factory and save_pretrained)
//   infer_dtype           auto (config.json's) | float32 | bfloat16 | float16
//   export_adapter        (pdsd) write a PEFT adapter dir instead of merging (LoRA only)
//   finetuning_type       if given, must match the checkpoint's
//   template, export_device, export_legacy_format, trust_remote_code: accepted for LLaMA-Factory files
//
// An unknown key or a bad value throws InputError naming the file (or "command line") and the key.
#pragma once

#include <string>
#include <vector>

namespace pdsd {

struct ExportOptions {
  std::string model_name_or_path;
  std::string adapter_name_or_path;
  std::string checkpoint;
  std::string export_dir;
  double export_size = 5;
  std::string infer_dtype = "auto";
  bool export_adapter = false;
  std::string finetuning_type;

  int64_t max_shard_bytes() const { return static_cast<int64_t>(export_size * 1e9); }
};

ExportOptions parse_export_options(const std::string& yaml_path, const std::vector<std::string>& overrides);

}  // namespace pdsd
