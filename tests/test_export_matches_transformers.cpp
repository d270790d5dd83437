// Exports as users consume them: transformers loads our Hugging Face dir (LoRA merged) and PEFT loads
// our adapter onto the base model, and both give the logits our model gives (tests/peer/check_export.py).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "tests/support/reference_tensors.h"
#include "worker/export/model_export.h"
#include "worker/export/safetensors_writer.h"
#include "worker/model_weights.h"

namespace fs = std::filesystem;

namespace pdsd {
namespace {

TEST(ExportMatchesTransformers, MergedModelAndPeftAdapter) {
  const std::string base = std::string(PDSD_SOURCE_DIR) + "/examples/tiny-qwen2";
  ModelConfig config = read_model_config(base);
  ModelWeights weights = load_model_weights(base, config);
  std::map<std::string, at::Tensor> params;
  for (const auto& [name, t] : weights.tensors) params[name] = t.to(at::kFloat).clone();
  CausalLM model(config, params);
  LoraSettings settings{.rank = 4, .alpha = 8, .dropout = 0.0, .targets = {"all"}};
  model.lora() = make_lora_adapters(config, settings, /*seed=*/3);
  at::manual_seed(5);
  for (auto& [module, adapter] : model.lora()) adapter.b = at::randn_like(adapter.b) * 0.05;  // as if trained

  at::Tensor ids = at::randint(0, config.vocab_size, {2, 12}, at::kLong);
  TokenBatch batch{ids, at::arange(12, at::kLong).expand({2, 12}).contiguous(), {}};
  at::Tensor logits = model.logits(batch);

  fs::path dir = fs::temp_directory_path() / ("pdsd-test-export-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  export_hf_model(model, base, (dir / "merged").string(), "float32");
  export_peft_adapter(model, settings, base, (dir / "adapter").string());
  write_safetensors((dir / "ours.safetensors").string(), {{"input_ids", ids}, {"logits", logits}});
  ASSERT_TRUE(fs::exists(dir / "merged" / "tokenizer.json"));

  auto r = testing::run_reference_script("check_export.py", (dir / "merged").string() + " " + (dir / "adapter").string() +
                                                                " " + base + " " + (dir / "ours.safetensors").string());
  std::printf("%s", r.output.c_str());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace pdsd
