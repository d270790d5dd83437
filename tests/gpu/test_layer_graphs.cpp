// On a GPU in bf16: decoder layers replayed as CUDA graphs (cuda_graphs) train as the eager layers
// do. Three padding-free micro-batches accumulate into one step's gradients: two of them in one token
// bucket with different real lengths (the longer first, so a stale tail would show), one in another
// bucket between them (which overwrites the shared graph memory). Full, LoRA and freeze, with and
// without gradient checkpointing; and under ZeRO-3 (one rank), over two optimizer steps, the graphs
// reading the layers where ZeRO-3 keeps them whole. Skips cleanly where no GPU is present.
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include <random>

#include "tests/support/one_rank_shard_comm.h"
#include "worker/model/causal_lm.h"
#include "worker/model/layer_graphs.h"
#include "worker/model_weights.h"
#include "worker/train/batch_plan.h"
#include "worker/train/causal_lm_loss.h"
#include "worker/train/zero3_parameters.h"

namespace pdsd {
namespace {

enum class Method { full, lora, freeze };

struct Outcome {
  std::vector<double> losses;                // per micro-batch
  std::map<std::string, at::Tensor> grads;  // accumulated over the micro-batches; fp32, on the CPU
  int64_t replays = 0, buckets = 0;
  int64_t buckets_ahead = -1;  // captured by capture_ahead, before training
};

// One padding-free micro-batch of samples of these lengths, the first ~30% of each a prompt.
TrainBatch micro_batch(const std::vector<int64_t>& lengths, int64_t vocab, uint32_t seed, at::Device device) {
  std::mt19937 rng(seed);
  std::vector<SftExample> samples;
  for (int64_t len : lengths) {
    SftExample e;
    for (int64_t t = 0; t < len; ++t) {
      e.input_ids.push_back(static_cast<int32_t>(rng() % vocab));
      e.labels.push_back(t < len * 3 / 10 ? static_cast<int32_t>(kIgnoreIndex) : e.input_ids.back());
    }
    samples.push_back(e);
  }
  BatchPlan plan(samples, {.batch_size = static_cast<int64_t>(lengths.size()), .padding_free = true});
  TrainBatch b = plan.micro_batches(0)[0];
  b.tokens.input_ids = b.tokens.input_ids.to(device);
  b.tokens.position_ids = b.tokens.position_ids.to(device);
  b.tokens.segment_ids = b.tokens.segment_ids.to(device);
  b.tokens.cu_seqlens = b.tokens.cu_seqlens.to(device);
  b.loss_positions = b.loss_positions.to(device);
  b.loss_targets = b.loss_targets.to(device);
  return b;
}

// 600 tokens (bucket 640), 300 (bucket 320), 580 (bucket 640 again, 60 pad tokens where the first had 40).
std::vector<TrainBatch> three_micro_batches(int64_t vocab, at::Device device) {
  return {micro_batch({200, 150, 250}, vocab, 1, device), micro_batch({100, 120, 80}, vocab, 2, device),
          micro_batch({300, 180, 100}, vocab, 3, device)};
}

Outcome train(const ModelConfig& config, const ModelWeights& weights, const std::vector<TrainBatch>& batches,
              Method method, bool checkpointing, bool graphs, double lora_dropout = 0) {
  const at::Device gpu(at::kCUDA, 0);
  std::map<std::string, at::Tensor> params;
  for (const auto& [name, t] : weights.tensors) {
    const bool trains = method == Method::full || (method == Method::freeze && decoder_layer_of(name) == 1);
    params[name] = trains ? t.to(gpu, at::kFloat).clone().requires_grad_(true) : t.to(gpu, at::kBFloat16).clone();
  }
  CausalLM model(config, params, at::kBFloat16);
  if (method == Method::lora) {
    model.lora() = make_lora_adapters(config, {.rank = 4, .alpha = 8, .dropout = lora_dropout, .targets = {"all"}}, 11);
    at::Generator gen = at::detail::createCPUGenerator(5);
    for (auto& [module, adapter] : model.lora()) {
      adapter.a = adapter.a.to(gpu).detach().requires_grad_(true);
      // B starts at zero in training; random here so that A gets gradients too.
      adapter.b = (at::randn(adapter.b.sizes(), gen) * 0.05).to(gpu).requires_grad_(true);
    }
  }
  model.set_gradient_checkpointing(checkpointing);
  Outcome out;
  std::unique_ptr<LayerGraphs> layer_graphs;
  if (graphs) {
    layer_graphs = std::make_unique<LayerGraphs>(model);
    model.set_layer_runner(layer_graphs->runner(), [](int64_t) { return false; });
    if (checkpointing || lora_dropout > 0) {  // the job's way: every bucket captured before training (else: on first use)
      std::vector<std::pair<int64_t, int64_t>> shapes;
      for (const auto& b : batches) shapes.emplace_back(b.tokens.input_ids.size(1), b.tokens.cu_seqlens.size(0) - 1);
      layer_graphs->capture_ahead(shapes);
      out.buckets_ahead = layer_graphs->buckets_captured();
    }
  }
  model.set_training(true);  // after the captures ahead, as in the job
  model.cast_lora_for_step();  // as the trainer does (a no-op under graphs)
  int64_t step_tokens = 0;
  for (const auto& b : batches) step_tokens += b.loss_positions.size(0);
  for (const auto& b : batches) {
    LossSum loss = causal_lm_loss_at(model.hidden_states(b.tokens), model.lm_head_weight(), b.loss_positions, b.loss_targets);
    (loss.sum / static_cast<double>(step_tokens)).backward();
    out.losses.push_back(loss.sum.item<double>() / static_cast<double>(loss.tokens));
  }
  for (const auto& [name, p] : model.parameters()) {
    if (p.requires_grad()) out.grads[name] = p.grad().to(at::kCPU, at::kFloat);
  }
  for (const auto& [module, adapter] : model.lora()) {
    out.grads[module + ".lora_A"] = adapter.a.grad().to(at::kCPU, at::kFloat);
    out.grads[module + ".lora_B"] = adapter.b.grad().to(at::kCPU, at::kFloat);
  }
  if (layer_graphs) out.replays = layer_graphs->replays(), out.buckets = layer_graphs->buckets_captured();
  return out;
}

double worst_relative_error(const Outcome& ours, const Outcome& theirs, std::string* where) {
  double worst = 0;
  for (const auto& [name, g] : ours.grads) {
    const at::Tensor& ref = theirs.grads.at(name);
    const double e = (g - ref).abs().max().item<double>() / std::max(ref.abs().max().item<double>(), 1e-12);
    if (!(e <= worst)) worst = e, *where = name;  // NaN counts as worst
  }
  return worst;
}

struct Tiny {  // the shipped tiny Qwen2 (head_dim 16: flash attention runs it)
  std::string dir = std::string(PDSD_SOURCE_DIR) + "/examples/tiny-qwen2";
  ModelConfig config = read_model_config(dir);
  ModelWeights weights = load_model_weights(dir, config);
};

TEST(LayerGraphs, TokenBucketsPadAtMostAnEighth) {
  EXPECT_EQ(graph_token_bucket(1), 64);
  EXPECT_EQ(graph_token_bucket(64), 64);
  EXPECT_EQ(graph_token_bucket(65), 128);
  EXPECT_EQ(graph_token_bucket(600), 640);
  EXPECT_EQ(graph_token_bucket(1300), 1408);
  EXPECT_EQ(graph_token_bucket(4096), 4096);
  for (int64_t t = 1; t < 20000; t += 37) {
    const int64_t b = graph_token_bucket(t);
    ASSERT_GE(b, t);
    ASSERT_LE(b - t, std::max<int64_t>(63, t / 8)) << t;
  }
}

TEST(LayerGraphs, TrainAsTheEagerLayersOnGpu) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU on this machine (or built without CUDA)";
  const Tiny tiny;
  const ModelConfig& config = tiny.config;
  const ModelWeights& weights = tiny.weights;
  const at::Device gpu(at::kCUDA, 0);
  const std::vector<TrainBatch> batches = three_micro_batches(config.vocab_size, gpu);
  for (Method method : {Method::full, Method::lora, Method::freeze}) {
    for (bool checkpointing : {false, true}) {
      const char* name = method == Method::full ? "full" : method == Method::lora ? "lora" : "freeze";
      SCOPED_TRACE(std::string(name) + (checkpointing ? ", checkpointing" : ""));
      Outcome eager = train(config, weights, batches, method, checkpointing, false);
      Outcome graphed = train(config, weights, batches, method, checkpointing, true);
      const int64_t graphed_layers = method == Method::freeze ? 1 : config.num_hidden_layers;
      EXPECT_EQ(graphed.buckets, 2);
      if (checkpointing) EXPECT_EQ(graphed.buckets_ahead, 2) << "training then captured nothing more";
      EXPECT_EQ(graphed.replays, 2 * graphed_layers * static_cast<int64_t>(batches.size()));
      ASSERT_EQ(graphed.losses.size(), eager.losses.size());
      for (size_t i = 0; i < eager.losses.size(); ++i) EXPECT_NEAR(graphed.losses[i], eager.losses[i], 5e-3 * eager.losses[i]) << i;
      ASSERT_EQ(graphed.grads.size(), eager.grads.size());
      std::string where;
      const double worst = worst_relative_error(graphed, eager, &where);
      // Padding changes the GEMMs' shapes, so bf16 sums round differently; a lost micro-batch or a
      // pad token leaking in would be off by far more.
      EXPECT_LT(worst, 2e-2) << where;
      std::printf("%s%s: losses %.5f %.5f %.5f (eager %.5f %.5f %.5f), worst gradient error %.2e (%s), %lld replays\n",
                  name, checkpointing ? " checkpointed" : "", graphed.losses[0], graphed.losses[1], graphed.losses[2],
                  eager.losses[0], eager.losses[1], eager.losses[2], worst, where.c_str(),
                  static_cast<long long>(graphed.replays));
    }
  }
}

// LoRA dropout is in the graphs even when they were captured before the model was put in training
// mode (the job captures before step 1): the losses differ from those without dropout.
TEST(LayerGraphs, LoraDropoutIsCapturedAheadOfTrainingOnGpu) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU on this machine (or built without CUDA)";
  const Tiny tiny;
  const ModelConfig& config = tiny.config;
  const ModelWeights& weights = tiny.weights;
  const at::Device gpu(at::kCUDA, 0);
  const std::vector<TrainBatch> batches = {micro_batch({200, 150, 250}, config.vocab_size, 1, gpu)};
  // With checkpointing off: the forward's dropout masks are saved for backward (with it the recompute
  // would draw others, which the config check refuses). Captured ahead here too, with training off.
  Outcome plain = train(config, weights, batches, Method::lora, false, true, 0.0);
  Outcome dropped = train(config, weights, batches, Method::lora, false, true, 0.3);
  Outcome eager_dropped = train(config, weights, batches, Method::lora, false, false, 0.3);
  EXPECT_GT(std::abs(dropped.losses[0] - plain.losses[0]), 1e-4) << "no dropout in the graphs";
  std::printf("loss without dropout %.5f, with lora_dropout 0.3: graphs %.5f, eager %.5f\n", plain.losses[0],
              dropped.losses[0], eager_dropped.losses[0]);
}

// ZeRO-3 on one rank (its collectives copies): two optimizer steps of the three micro-batches, with
// the layers gathered around each run (eager) or resident and replayed as graphs. The second step's
// losses show that the graphs read the weights the update gathered again in place.
struct Zero3Outcome {
  std::vector<double> losses;                    // per micro-batch, both steps
  std::map<std::string, at::Tensor> lora_grads;  // after step 1
  std::vector<at::Tensor> masters;               // after step 2 (full, freeze)
  int64_t replays = 0;
};

Zero3Outcome train_zero3(const ModelConfig& config, const ModelWeights& weights, const std::vector<TrainBatch>& batches,
                         Method method, bool checkpointing, bool graphs) {
  const at::Device gpu(at::kCUDA, 0);
  CausalLM model(config, weights.tensors, at::kBFloat16);  // ZeRO-3 copies out its shards and empties these
  model.set_gradient_checkpointing(checkpointing);
  if (method == Method::lora) {
    model.lora() = make_lora_adapters(config, {.rank = 4, .alpha = 8, .dropout = 0, .targets = {"all"}}, 11);
    at::Generator gen = at::detail::createCPUGenerator(5);
    for (auto& [module, adapter] : model.lora()) {
      adapter.a = adapter.a.to(gpu).detach().requires_grad_(true);
      adapter.b = (at::randn(adapter.b.sizes(), gen) * 0.05).to(gpu).requires_grad_(true);
    }
  }
  const auto trains = [method](const std::string& name) {
    return method == Method::full || (method == Method::freeze && decoder_layer_of(name) == 1);
  };
  testing::OneRankShardComm one_rank;
  Zero3Parameters z3(model, weights.tensors, trains, [](const std::string&) { return true; }, one_rank.comm(),
                     Zero3Options{.compute_dtype = at::kBFloat16, .device = gpu, .adam = {.weight_decay = 0.0},
                                  .keep_gathered_bytes = graphs ? int64_t{1} << 30 : 0,
                                  .gradient_checkpointing = checkpointing, .resident_layers = graphs});
  model.set_layer_runner(z3.layer_runner(), [&z3](int64_t layer) { return z3.layer_trains(layer); });
  std::unique_ptr<LayerGraphs> layer_graphs;
  if (graphs) {
    layer_graphs = std::make_unique<LayerGraphs>(model, [&z3](int64_t layer) { z3.wait_for_layer(layer); });
    model.set_layer_runner(layer_graphs->runner(), [](int64_t) { return false; });
    std::vector<std::pair<int64_t, int64_t>> shapes;
    for (const auto& b : batches) shapes.emplace_back(b.tokens.input_ids.size(1), b.tokens.cu_seqlens.size(0) - 1);
    layer_graphs->capture_ahead(shapes);
  }
  model.set_training(true);
  int64_t step_tokens = 0;
  for (const auto& b : batches) step_tokens += b.loss_positions.size(0);
  Zero3Outcome out;
  for (int step = 0; step < 2; ++step) {
    z3.gather_outer();
    model.cast_lora_for_step();
    for (const auto& b : batches) {
      LossSum loss = causal_lm_loss_at(model.hidden_states(b.tokens), model.lm_head_weight(), b.loss_positions, b.loss_targets);
      (loss.sum / static_cast<double>(step_tokens)).backward();
      out.losses.push_back(loss.sum.item<double>() / static_cast<double>(loss.tokens));
    }
    model.drop_lora_casts();
    z3.release_outer();
    if (step == 0) {
      for (const auto& [module, adapter] : model.lora()) {
        out.lora_grads[module + ".lora_A"] = adapter.a.grad().to(at::kCPU, at::kFloat);
        out.lora_grads[module + ".lora_B"] = adapter.b.grad().to(at::kCPU, at::kFloat);
      }
    }
    z3.step(/*lr=*/1e-3, /*max_grad_norm=*/0);
  }
  for (const auto& [name, tensor] : z3.state_tensors()) {
    if (name.rfind("param@", 0) == 0) out.masters.push_back(tensor.to(at::kCPU));
  }
  if (layer_graphs) out.replays = layer_graphs->replays();
  return out;
}

TEST(LayerGraphs, Zero3TrainsAsItsEagerLayersOnGpu) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU on this machine (or built without CUDA)";
  const Tiny tiny;
  const ModelConfig& config = tiny.config;
  const at::Device gpu(at::kCUDA, 0);
  const std::vector<TrainBatch> batches = three_micro_batches(config.vocab_size, gpu);
  for (Method method : {Method::full, Method::lora, Method::freeze}) {
    for (bool checkpointing : {false, true}) {
      const char* name = method == Method::full ? "full" : method == Method::lora ? "lora" : "freeze";
      SCOPED_TRACE(std::string(name) + (checkpointing ? ", checkpointing" : ""));
      const Zero3Outcome eager = train_zero3(config, tiny.weights, batches, method, checkpointing, false);
      const Zero3Outcome graphed = train_zero3(config, tiny.weights, batches, method, checkpointing, true);
      const int64_t graphed_layers = method == Method::freeze ? 1 : config.num_hidden_layers;
      EXPECT_EQ(graphed.replays, 2 * graphed_layers * 2 * static_cast<int64_t>(batches.size()));
      ASSERT_EQ(graphed.losses.size(), 6u);
      for (size_t i = 0; i < 6; ++i) EXPECT_NEAR(graphed.losses[i], eager.losses[i], 5e-3 * eager.losses[i]) << i;
      if (method != Method::lora) {
        EXPECT_GT(std::abs(eager.losses[3] - eager.losses[0]), 1e-3) << "the update moved the loss";
      }
      double worst_grad = 0, worst_master = 0;
      for (const auto& [n, g] : eager.lora_grads) {
        const at::Tensor& mine = graphed.lora_grads.at(n);
        worst_grad = std::max(worst_grad, (mine - g).abs().max().item<double>() / std::max(g.abs().max().item<double>(), 1e-12));
      }
      EXPECT_LT(worst_grad, 2e-2);
      ASSERT_EQ(graphed.masters.size(), eager.masters.size());
      for (size_t i = 0; i < eager.masters.size(); ++i) {
        worst_master = std::max(worst_master, (graphed.masters[i] - eager.masters[i]).abs().max().item<double>());
      }
      // Two AdamW steps at lr 1e-3 move a weight by at most about 2e-3; a gradient rounded another way
      // in bf16 may change an element's step, not every element's.
      EXPECT_LE(worst_master, 2e-3);
      std::printf("zero3 %s%s: step 1 loss %.5f, step 2 %.5f (eager %.5f, %.5f); worst LoRA gradient error %.2e, "
                  "worst master difference %.2e; %lld replays\n",
                  name, checkpointing ? " checkpointed" : "", graphed.losses[0], graphed.losses[3], eager.losses[0],
                  eager.losses[3], worst_grad, worst_master, static_cast<long long>(graphed.replays));
    }
  }
}

}  // namespace
}  // namespace pdsd
