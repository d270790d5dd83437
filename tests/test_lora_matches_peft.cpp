// LoRA training against PEFT + torch AdamW (tests/peer/lora_peft_reference.py): from the same initial
// adapters and the same batches, 10 optimizer steps (2 accumulated micro-batches, cosine schedule
// with warmup, clipping, weight decay) give the same loss, grad norm and learning rate at every step
// and the same final adapter weights, within float32 tolerance.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>

#include "common/error.h"
#include "tests/support/reference_tensors.h"
#include "worker/model/causal_lm.h"
#include "worker/model_weights.h"
#include "worker/train/trainer.h"

namespace fs = std::filesystem;

namespace pdsd {
namespace {

// The reference run (tests/peer/lora_peft_reference.py) in a temporary directory, removed after:
// its tensors (initial adapters, batches, losses, final adapters) and its model.
struct PeftReference {
  fs::path dir;
  std::map<std::string, at::Tensor> ref;
  ModelConfig config;
  std::map<std::string, at::Tensor> base;  // the model's weights as written (the frozen base)
  ~PeftReference() { fs::remove_all(dir); }
};

std::unique_ptr<PeftReference> run_peft_reference(const std::string& tag) {
  auto peft = std::make_unique<PeftReference>();
  peft->dir = fs::temp_directory_path() / ("pdsd-test-" + tag + "-" + std::to_string(::getpid()));
  fs::create_directories(peft->dir);
  auto r = testing::run_reference_script("lora_peft_reference.py", peft->dir.string());
  if (r.exit_code != 0) {
    ADD_FAILURE() << "reference script failed:\n" << r.output;
    return nullptr;
  }
  peft->ref = testing::read_reference_tensors((peft->dir / "reference.safetensors").string());
  const std::string model_dir = (peft->dir / "model").string();
  peft->config = read_model_config(model_dir);
  ModelWeights weights = load_model_weights(model_dir, peft->config);
  for (const auto& [name, t] : weights.tensors) peft->base[name] = t.clone();
  return peft;
}

std::map<std::string, at::Tensor> weights_in(const std::map<std::string, at::Tensor>& base, at::ScalarType dtype) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, t] : base) out[name] = t.to(dtype).clone();
  return out;
}

TEST(LoraMatchesPeft, TenStepsOfAdamW) {
  auto peft = run_peft_reference("lora-peft");
  ASSERT_TRUE(peft);
  const auto& ref = peft->ref;
  const ModelConfig& config = peft->config;
  CausalLM model(config, weights_in(peft->base, at::kFloat));

  LoraSettings settings{.rank = 4, .alpha = 8, .dropout = 0.0, .targets = {"q_proj", "v_proj"}};
  model.lora() = make_lora_adapters(config, settings, /*seed=*/0);
  std::vector<TrainableParameter> trainable;
  for (auto& [module, adapter] : model.lora()) {
    // Start from PEFT's own initial values (its RNG is not ours).
    adapter.a = ref.at("init." + module + ".a").clone().requires_grad_(true);
    adapter.b = ref.at("init." + module + ".b").clone().requires_grad_(true);
    trainable.push_back({module + ".lora_A", adapter.a, true});
    trainable.push_back({module + ".lora_B", adapter.b, true});
  }
  ASSERT_EQ(trainable.size(), 2u * 2u * 2u);  // 2 layers × {q_proj, v_proj} × {A, B}

  const int64_t steps = 10;
  TrainerOptions options;
  options.schedule = {.type = "cosine", .peak = 1e-3, .warmup_steps = 2, .total_steps = steps};
  options.adam = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01};
  options.max_grad_norm = 1.0;
  options.logging_steps = 1000;
  Trainer trainer(model, trainable, options);
  auto records = trainer.train(steps, [&](int64_t step) {
    std::vector<TrainBatch> micro;
    for (int m = 0; m < 2; ++m) {
      std::string key = "batch." + std::to_string(step) + "." + std::to_string(m) + ".";
      TrainBatch b;
      b.tokens.input_ids = ref.at(key + "input_ids");
      b.tokens.position_ids = at::arange(b.tokens.input_ids.size(1), at::kLong).expand_as(b.tokens.input_ids).contiguous();
      b.labels = ref.at(key + "labels");
      b.real_tokens = b.tokens.input_ids.numel();
      micro.push_back(b);
    }
    return micro;
  });
  ASSERT_EQ(records.size(), static_cast<size_t>(steps));
  double worst_loss = 0, worst_weight = 0;
  for (int64_t i = 0; i < steps; ++i) {
    const double want = ref.at("loss")[i].item<double>();
    EXPECT_NEAR(records[i].loss, want, 1e-5 * want) << "loss at step " << i + 1;
    EXPECT_NEAR(records[i].grad_norm, ref.at("grad_norm")[i].item<double>(), 1e-4 * ref.at("grad_norm")[i].item<double>() + 1e-7)
        << "grad norm at step " << i + 1;
    EXPECT_NEAR(records[i].lr, ref.at("lr")[i].item<double>(), 1e-12) << "lr at step " << i + 1;
    worst_loss = std::max(worst_loss, std::abs(records[i].loss / want - 1));
  }
  for (const auto& [module, adapter] : model.lora()) {
    for (const char* kind : {"a", "b"}) {
      at::Tensor ours = std::string(kind) == "a" ? adapter.a : adapter.b;
      at::Tensor theirs = ref.at("final." + module + "." + kind);
      double e = (ours - theirs).abs().max().item<double>() / theirs.abs().max().item<double>();
      EXPECT_LT(e, 1e-4) << module << " lora_" << kind;
      worst_weight = std::max(worst_weight, e);
    }
  }
  EXPECT_GT((model.lora().begin()->second.b).abs().max().item<double>(), 0.0) << "the adapters did not train";
  std::printf("LoRA vs PEFT over %ld steps: max relative error loss %.2e, final adapter weights %.2e\n",
              static_cast<long>(steps), worst_loss, worst_weight);
}

// The trainer casts the fp32 adapters to the compute dtype once per optimizer step and every
// micro-batch uses those casts: the adapters' gradients must equal a cast at each use, bit for bit
// (bf16 compute, two micro-batches accumulated, the same model and batches as above).
TEST(LoraCastOncePerStep, SameGradientsAsACastAtEachUse) {
  auto peft = run_peft_reference("lora-cast");
  ASSERT_TRUE(peft);
  const auto& ref = peft->ref;
  const ModelConfig& config = peft->config;
  CausalLM model(config, weights_in(peft->base, at::kBFloat16), at::kBFloat16);
  model.set_training(true);
  LoraSettings settings{.rank = 4, .alpha = 8, .dropout = 0.0, .targets = {"q_proj", "v_proj"}};
  model.lora() = make_lora_adapters(config, settings, /*seed=*/0);
  for (auto& [module, adapter] : model.lora()) {
    adapter.a = ref.at("init." + module + ".a").clone().requires_grad_(true);
    // B starts at zero in training; nonzero here so that A gets a gradient too.
    const at::Tensor& b = ref.at("init." + module + ".b");
    adapter.b = at::linspace(-0.05, 0.05, b.numel(), at::kFloat).view(b.sizes()).requires_grad_(true);
  }
  auto gradients = [&](bool cast_once) {
    if (cast_once) model.cast_lora_for_step();
    for (int m = 0; m < 2; ++m) {
      std::string key = "batch.0." + std::to_string(m) + ".";
      TokenBatch tokens;
      tokens.input_ids = ref.at(key + "input_ids");
      tokens.position_ids = at::arange(tokens.input_ids.size(1), at::kLong).expand_as(tokens.input_ids).contiguous();
      model.logits(tokens).square().mean().backward();
    }
    model.drop_lora_casts();
    std::map<std::string, at::Tensor> out;
    for (auto& [module, adapter] : model.lora()) {
      if (!adapter.a.grad().defined() || !adapter.b.grad().defined()) throw Error(module + ": an adapter got no gradient");
      out[module + ".a"] = adapter.a.grad().clone();
      out[module + ".b"] = adapter.b.grad().clone();
      adapter.a.mutable_grad() = at::Tensor();
      adapter.b.mutable_grad() = at::Tensor();
    }
    return out;
  };
  auto each_use = gradients(false);
  auto once = gradients(true);
  ASSERT_EQ(each_use.size(), once.size());
  for (const auto& [name, g] : each_use) {
    EXPECT_GT(g.abs().max().item<double>(), 0.0) << name << " got no gradient";
    EXPECT_TRUE(at::equal(g, once.at(name))) << name << ": max difference " << (g - once.at(name)).abs().max().item<double>();
  }
}

}  // namespace
}  // namespace pdsd
