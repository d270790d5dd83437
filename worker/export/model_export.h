// The trained model in the forms users serve: a Hugging Face model dir (LoRA merged into the base
// weights; config.json, generation_config.json and tokenizer files from the source dir, the weights
// as model.safetensors or, past `max_shard_bytes`, as model-0000k-of-0000n.safetensors shards with
// model.safetensors.index.json — the layout of transformers' save_pretrained(max_shard_size=...)), or
// a PEFT adapter dir (adapter_model.safetensors + adapter_config.json) that PEFT loads onto the base
// model. tests/test_export_matches_transformers.cpp loads both with the real libraries.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "worker/model/causal_lm.h"
#include "worker/model/lora.h"

namespace pdsd {

// The dtype weights are saved in: `dtype` ("float32", "bfloat16", "float16"), or "" for config.json's
// (float32 when it names none). Throws InputError naming any other.
at::ScalarType export_dtype(const ModelConfig& config, const std::string& dtype = "");

// `dtype`: as export_dtype takes it.
// Returns the weight files written.
std::vector<std::string> export_hf_model(const CausalLM& model, const std::string& source_model_dir,
                                         const std::string& out_dir, const std::string& dtype = "",
                                         int64_t max_shard_bytes = 5'000'000'000);

void export_peft_adapter(const CausalLM& model, const LoraSettings& settings, const std::string& base_model_path,
                         const std::string& out_dir);

}  // namespace pdsd
