// Our Qwen2 and Llama against transformers, on small random models made by transformers itself
// (tests/peer/causal_lm_reference.py): logits, loss and every parameter's gradient agree within
// float32 tolerance; a packed row and a padded batch give the same loss as the samples one by one.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <tuple>

#include <ATen/core/grad_mode.h>

#include "tests/support/autograd_graph.h"
#include "tests/support/reference_tensors.h"
#include "worker/model/causal_lm.h"
#include "worker/model_weights.h"
#include "worker/train/causal_lm_loss.h"

namespace fs = std::filesystem;

namespace pdsd {
namespace {

class CausalLmMatchesTransformers : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("pdsd-test-causal-lm-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    auto r = testing::run_reference_script("causal_lm_reference.py", dir_.string());
    ASSERT_EQ(r.exit_code, 0) << "reference script failed:\n" << r.output;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  // The model with fp32 trainable copies of every weight.
  CausalLM load() {
    std::string model_dir = (dir_ / GetParam()).string();
    ModelConfig config = read_model_config(model_dir);
    ModelWeights weights = load_model_weights(model_dir, config);
    std::map<std::string, at::Tensor> params;
    for (const auto& [name, t] : weights.tensors) params[name] = t.to(at::kFloat).clone().requires_grad_(true);
    return CausalLM(config, params);
  }
  std::map<std::string, at::Tensor> reference() {
    return testing::read_reference_tensors((dir_ / GetParam() / "reference.safetensors").string());
  }
  static TokenBatch batch_of(const at::Tensor& ids) {
    TokenBatch b;
    b.input_ids = ids;
    b.position_ids = at::arange(ids.size(1), at::kLong).unsqueeze(0).expand({ids.size(0), ids.size(1)}).contiguous();
    return b;
  }
  static double relative_error(const at::Tensor& ours, const at::Tensor& theirs) {
    return (ours - theirs).abs().max().item<double>() / std::max(theirs.abs().max().item<double>(), 1e-12);
  }

  static fs::path dir_;
};
fs::path CausalLmMatchesTransformers::dir_;

TEST_P(CausalLmMatchesTransformers, LogitsLossAndGradients) {
  CausalLM model = load();
  auto ref = reference();
  model.set_training(true);
  TokenBatch batch = batch_of(ref.at("input_ids"));
  at::Tensor hidden = model.hidden_states(batch);
  at::Tensor logits = at::linear(hidden, model.lm_head_weight()).to(at::kFloat);
  const double logits_error = relative_error(logits, ref.at("logits"));
  EXPECT_LT(logits_error, 1e-5) << "logits";

  LossSum loss = causal_lm_loss(hidden, model.lm_head_weight(), ref.at("labels"), /*chunk_tokens=*/7);
  at::Tensor mean = loss.sum / static_cast<double>(loss.tokens);
  EXPECT_NEAR(mean.item<double>(), ref.at("loss").item<double>(), 1e-5 * ref.at("loss").item<double>());
  mean.backward();
  int compared = 0;
  double worst_grad = 0;
  for (const auto& [name, p] : model.parameters()) {
    ASSERT_TRUE(p.grad().defined()) << name << " got no gradient";
    const double e = relative_error(p.grad(), ref.at("grad." + name));
    EXPECT_LT(e, 1e-4) << "gradient of " << name;
    worst_grad = std::max(worst_grad, e);
    ++compared;
  }
  std::printf("%s: max relative error logits %.2e, loss %.2e, gradients (%d tensors) %.2e\n", GetParam().c_str(),
              logits_error, std::abs(mean.item<double>() / ref.at("loss").item<double>() - 1), compared, worst_grad);
  EXPECT_EQ(compared, static_cast<int>(model.config().expected_weights().size()));
}

// The trainer's loss: only the positions that predict a label go through lm_head (prompt and padding
// never do), listed on the host. Same loss and gradients as transformers.
TEST_P(CausalLmMatchesTransformers, LossAtLabelledPositionsMatchesTransformers) {
  CausalLM model = load();
  auto ref = reference();
  model.set_training(true);
  const at::Tensor& labels = ref.at("labels");
  std::vector<int64_t> positions, targets;
  for (int64_t r = 0; r < labels.size(0); ++r) {
    for (int64_t c = 0; c + 1 < labels.size(1); ++c) {
      const int64_t next = labels[r][c + 1].item<int64_t>();
      if (next != kIgnoreIndex) positions.push_back(r * labels.size(1) + c), targets.push_back(next);
    }
  }
  at::Tensor hidden = model.hidden_states(batch_of(ref.at("input_ids")));
  LossSum loss = causal_lm_loss_at(hidden, model.lm_head_weight(), at::tensor(positions, at::kLong),
                                   at::tensor(targets, at::kLong), /*chunk_tokens=*/5);
  ASSERT_EQ(loss.tokens, static_cast<int64_t>(positions.size()));
  at::Tensor mean = loss.sum / static_cast<double>(loss.tokens);
  EXPECT_NEAR(mean.item<double>(), ref.at("loss").item<double>(), 1e-5 * ref.at("loss").item<double>());
  mean.backward();
  for (const auto& [name, p] : model.parameters()) {
    ASSERT_TRUE(p.grad().defined()) << name << " got no gradient";
    EXPECT_LT(relative_error(p.grad(), ref.at("grad." + name)), 1e-4) << "gradient of " << name;
  }
}

TEST_P(CausalLmMatchesTransformers, PackedAndPaddedEqualOneByOne) {
  CausalLM model = load();
  auto ref = reference();
  at::NoGradGuard no_grad;
  const double one_by_one = ref.at("per_sample_loss_sum").sum().item<double>();
  // Padded batch (the reference's rows are right-padded).
  at::Tensor padded = causal_lm_loss(model.hidden_states(batch_of(ref.at("input_ids"))), model.lm_head_weight(),
                                     ref.at("labels")).sum;
  EXPECT_NEAR(padded.item<double>(), one_by_one, 1e-5 * one_by_one);
  // One packed row: sample 1 then sample 2, positions restarting, attention kept within each sample.
  const std::vector<int64_t> lengths = {17, 11};
  std::vector<at::Tensor> ids, labels, positions, segments;
  for (int64_t row = 0; row < 2; ++row) {
    ids.push_back(ref.at("input_ids")[row].narrow(0, 0, lengths[row]));
    labels.push_back(ref.at("labels")[row].narrow(0, 0, lengths[row]));
    positions.push_back(at::arange(lengths[row], at::kLong));
    segments.push_back(at::full({lengths[row]}, row, at::kLong));
  }
  TokenBatch packed{at::cat(ids).unsqueeze(0), at::cat(positions).unsqueeze(0), at::cat(segments).unsqueeze(0)};
  at::Tensor packed_sum = causal_lm_loss(model.hidden_states(packed), model.lm_head_weight(), at::cat(labels).unsqueeze(0)).sum;
  EXPECT_NEAR(packed_sum.item<double>(), one_by_one, 1e-5 * one_by_one);
}

INSTANTIATE_TEST_SUITE_P(Models, CausalLmMatchesTransformers, ::testing::Values("qwen2", "llama"));

}  // namespace
}  // namespace pdsd

namespace pdsd {
namespace {

// Activation checkpointing changes memory, not numbers: the same loss and gradients, LoRA dropout included.
TEST(GradientCheckpointing, SameLossAndGradientsAsWithout) {
  const std::string dir = std::string(PDSD_SOURCE_DIR) + "/examples/tiny-qwen2";
  ModelConfig config = read_model_config(dir);
  ModelWeights weights = load_model_weights(dir, config);
  auto run = [&](bool checkpointing, bool frozen_base) {
    std::map<std::string, at::Tensor> params;
    for (const auto& [name, t] : weights.tensors) params[name] = t.to(at::kFloat).clone().requires_grad_(!frozen_base);
    CausalLM model(config, params);
    model.lora() = make_lora_adapters(config, {.rank = 4, .alpha = 8, .dropout = 0.3, .targets = {"all"}}, 11);
    for (auto& [m, a] : model.lora()) a.b = (at::ones_like(a.b) * 0.01).requires_grad_(true);
    model.set_training(true);
    model.set_gradient_checkpointing(checkpointing);
    at::manual_seed(21);
    at::Tensor ids = at::randint(0, config.vocab_size, {2, 10}, at::kLong);
    TokenBatch batch{ids, at::arange(10, at::kLong).expand({2, 10}).contiguous(), {}};
    LossSum loss = causal_lm_loss(model.hidden_states(batch), model.lm_head_weight(), ids);
    loss.sum.backward();
    std::map<std::string, at::Tensor> grads;
    for (const auto& [name, p] : model.parameters()) {
      if (!frozen_base) grads[name] = p.grad().clone();
    }
    for (const auto& [m, a] : model.lora()) grads[m + ".A"] = a.a.grad().clone(), grads[m + ".B"] = a.b.grad().clone();
    return std::make_pair(loss.sum.item<double>(), grads);
  };
  for (bool frozen_base : {false, true}) {  // full fine-tuning, and LoRA on a frozen base
    auto [plain_loss, plain] = run(false, frozen_base);
    auto [ckpt_loss, ckpt] = run(true, frozen_base);
    EXPECT_DOUBLE_EQ(plain_loss, ckpt_loss);
    for (const auto& [name, g] : plain) {
      ASSERT_TRUE(ckpt.at(name).defined()) << name << " got no gradient with checkpointing";
      EXPECT_TRUE(at::allclose(g, ckpt.at(name), 1e-5, 1e-7)) << name;
    }
  }
}

// Freeze tuning (the last layer trains, the embedding and layer 0 frozen): backward stops at the
// layer that trains. Layer 0 runs without a graph, so it is neither checkpointed nor differentiated,
// and layer 1 gets the same gradients as when backward ran through everything. (Without
// checkpointing that was so before too; with it, layer 0 used to be checkpointed and recomputed,
// which the count of checkpointed layers catches.)
TEST(GradientCheckpointing, BackwardStopsAtTheFirstLayerThatTrains) {
  const std::string dir = std::string(PDSD_SOURCE_DIR) + "/examples/tiny-qwen2";
  ModelConfig config = read_model_config(dir);
  ASSERT_EQ(config.num_hidden_layers, 2);
  ModelWeights weights = load_model_weights(dir, config);
  const auto trains = [](const std::string& name) { return name.rfind("model.layers.1.", 0) == 0; };
  auto run = [&](bool checkpointing, bool embedding_trains) {
    std::map<std::string, at::Tensor> params;
    for (const auto& [name, t] : weights.tensors) {
      params[name] = t.to(at::kFloat).clone().requires_grad_(trains(name) || (embedding_trains && name == "model.embed_tokens.weight"));
    }
    CausalLM model(config, params);
    EXPECT_EQ(model.first_trained_layer(), 1) << "the embedding is not a layer";
    model.set_training(true);
    model.set_gradient_checkpointing(checkpointing);
    at::manual_seed(5);
    at::Tensor ids = at::randint(0, config.vocab_size, {2, 10}, at::kLong);
    TokenBatch batch{ids, at::arange(10, at::kLong).expand({2, 10}).contiguous(), {}};
    LossSum loss = causal_lm_loss(model.hidden_states(batch), model.lm_head_weight(), ids);
    const auto nodes = testing::graph_nodes(loss.sum);
    loss.sum.backward();
    std::map<std::string, at::Tensor> grads;
    for (const auto& [name, p] : model.parameters()) {
      if (trains(name)) grads[name] = p.grad().clone();
    }
    return std::make_tuple(loss.sum.item<double>(), grads, nodes);
  };
  const auto [ref_loss, ref, ref_nodes] = run(false, /*embedding_trains=*/true);  // backward through both layers
  EXPECT_EQ(testing::count_nodes(ref_nodes, "Embedding"), 1);
  const int layer1_params = static_cast<int>(ref.size());
  ASSERT_GT(layer1_params, 0);
  for (const bool checkpointing : {false, true}) {
    SCOPED_TRACE(checkpointing ? "checkpointing" : "no checkpointing");
    const auto [loss, grads, nodes] = run(checkpointing, /*embedding_trains=*/false);
    EXPECT_DOUBLE_EQ(loss, ref_loss);
    for (const auto& [name, g] : ref) EXPECT_TRUE(at::allclose(g, grads.at(name), 1e-5, 1e-7)) << name;
    // The leaves: the weights that train, nothing of layer 0. Checkpointed, layer 1's weights get
    // their gradients inside its backward, and autograd reaches that through its input, the one leaf.
    EXPECT_EQ(testing::count_nodes(nodes, "AccumulateGrad"), checkpointing ? 1 : layer1_params);
    EXPECT_EQ(testing::count_nodes(nodes, "CheckpointedLayer"), checkpointing ? 1 : 0) << "layer 0 is not checkpointed";
  }
}

TEST(GradientCheckpointing, FirstTrainedLayerCountsAdaptersWeightsAndARunnersLayers) {
  const std::string dir = std::string(PDSD_SOURCE_DIR) + "/examples/tiny-qwen2";
  ModelConfig config = read_model_config(dir);
  ModelWeights weights = load_model_weights(dir, config);
  std::map<std::string, at::Tensor> params;
  for (const auto& [name, t] : weights.tensors) params[name] = t.to(at::kFloat);
  CausalLM model(config, params);
  EXPECT_EQ(model.first_trained_layer(), 2) << "nothing trains";
  model.parameters().at("model.norm.weight").requires_grad_(true);
  EXPECT_EQ(model.first_trained_layer(), 2) << "the final norm is no layer";
  model.set_layer_runner([](int64_t, const at::Tensor& x, const at::Tensor&, const at::Tensor&, const AttentionLayout&) { return x; },
                         [](int64_t layer) { return layer == 1; });
  EXPECT_EQ(model.first_trained_layer(), 1) << "a runner holding the weights says which layers train";
  model.parameters().at("model.layers.0.mlp.up_proj.weight").requires_grad_(true);
  EXPECT_EQ(model.first_trained_layer(), 0);
  model.parameters().at("model.layers.0.mlp.up_proj.weight").requires_grad_(false);
  model.lora() = make_lora_adapters(config, {.rank = 2, .alpha = 4, .dropout = 0, .targets = {"q_proj"}}, 3);
  EXPECT_EQ(model.first_trained_layer(), 0) << "adapters on every layer";
}

}  // namespace
}  // namespace pdsd
