// On a GPU in bf16: a padding-free micro-batch (the samples end to end in one row, variable-length
// flash attention) gives the loss and gradients of the same samples padded (SDPA, causal), with and
// without activation checkpointing, and both stay within bf16 distance of an fp32 run on the CPU.
// Skips cleanly where no GPU is present.
#include <gtest/gtest.h>

#include <random>

#include "worker/model/causal_lm.h"
#include "worker/model_weights.h"
#include "worker/train/batch_plan.h"
#include "worker/train/causal_lm_loss.h"

namespace pdsd {
namespace {

struct Outcome {
  double loss = 0;
  std::map<std::string, at::Tensor> grads;  // fp32, on the CPU
};

// Samples of uneven lengths, the first ~30% of each a prompt without labels.
std::vector<SftExample> uneven_samples(int64_t vocab) {
  std::mt19937 rng(7);
  std::vector<SftExample> out;
  for (int64_t len : {37, 120, 64, 5, 90, 13, 200, 41}) {
    SftExample e;
    for (int64_t t = 0; t < len; ++t) {
      e.input_ids.push_back(static_cast<int32_t>(rng() % vocab));
      e.labels.push_back(t < len * 3 / 10 ? static_cast<int32_t>(kIgnoreIndex) : e.input_ids.back());
    }
    out.push_back(e);
  }
  return out;
}

Outcome run(const ModelConfig& config, const ModelWeights& weights, bool padding_free, at::Device device,
            at::ScalarType compute, bool checkpointing) {
  BatchPlan plan(uneven_samples(config.vocab_size), {.batch_size = 8, .padding_free = padding_free});
  TrainBatch b = plan.micro_batches(0)[0];
  b.tokens.input_ids = b.tokens.input_ids.to(device);
  b.tokens.position_ids = b.tokens.position_ids.to(device);
  if (b.tokens.segment_ids.defined()) b.tokens.segment_ids = b.tokens.segment_ids.to(device);
  if (b.tokens.cu_seqlens.defined()) b.tokens.cu_seqlens = b.tokens.cu_seqlens.to(device);
  std::map<std::string, at::Tensor> params;
  for (const auto& [name, t] : weights.tensors) params[name] = t.to(device, at::kFloat).clone().requires_grad_(true);
  CausalLM model(config, params, compute);
  model.set_training(true);
  model.set_gradient_checkpointing(checkpointing);
  LossSum loss = causal_lm_loss_at(model.hidden_states(b.tokens), model.lm_head_weight(), b.loss_positions.to(device),
                                   b.loss_targets.to(device));
  at::Tensor mean = loss.sum / static_cast<double>(loss.tokens);
  mean.backward();
  Outcome out{mean.item<double>(), {}};
  for (const auto& [name, p] : model.parameters()) out.grads[name] = p.grad().to(at::kCPU, at::kFloat);
  return out;
}

double worst_relative_error(const Outcome& ours, const Outcome& theirs) {
  double worst = 0;
  for (const auto& [name, g] : ours.grads) {
    const at::Tensor& ref = theirs.grads.at(name);
    worst = std::max(worst, (g - ref).abs().max().item<double>() / std::max(ref.abs().max().item<double>(), 1e-12));
  }
  return worst;
}

TEST(PaddingFreeAttention, MatchesThePaddedBatchOnGpu) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU on this machine (or built without CUDA)";
  const std::string dir = std::string(PDSD_SOURCE_DIR) + "/examples/tiny-qwen2";
  ModelConfig config = read_model_config(dir);
  ModelWeights weights = load_model_weights(dir, config);
  const at::Device gpu(at::kCUDA, 0);
  Outcome cpu = run(config, weights, false, at::kCPU, at::kFloat, false);
  Outcome padded = run(config, weights, false, gpu, at::kBFloat16, false);
  Outcome flat = run(config, weights, true, gpu, at::kBFloat16, false);
  Outcome flat_checkpointed = run(config, weights, true, gpu, at::kBFloat16, true);
  EXPECT_NEAR(flat.loss, padded.loss, 5e-3 * padded.loss);
  EXPECT_NEAR(flat.loss, cpu.loss, 1e-2 * cpu.loss);
  EXPECT_EQ(flat_checkpointed.loss, flat.loss) << "recomputation runs the same kernels";
  const double vs_padded = worst_relative_error(flat, padded), vs_cpu = worst_relative_error(flat, cpu),
               padded_vs_cpu = worst_relative_error(padded, cpu),
               checkpointed = worst_relative_error(flat_checkpointed, flat);
  EXPECT_LT(vs_padded, 5e-2);
  EXPECT_LT(vs_cpu, 2 * padded_vs_cpu + 1e-2) << "no further from fp32 than the padded bf16 run";
  EXPECT_LT(checkpointed, 2e-2) << "flash attention's backward sums in a varying order; a lost layout would be far off";
  std::printf("loss fp32 cpu %.6f, bf16 padded %.6f, bf16 padding-free %.6f; worst gradient error: padding-free vs "
              "padded %.2e, vs fp32 %.2e (padded vs fp32 %.2e), checkpointed %.2e\n",
              cpu.loss, padded.loss, flat.loss, vs_padded, vs_cpu, padded_vs_cpu, checkpointed);
}

}  // namespace
}  // namespace pdsd
