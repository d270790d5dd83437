// ZeRO-3 gathers each layer for each run of it (worker/train/zero3_parameters.h), except at the two
// turns of a micro-batch: the last layer stays whole from forward into backward, and layer 0 from
// backward into the next forward until the optimizer step changes it; and except for layers kept
// whole under the keep budget (zero3_keep_gathered_mb). Without gradient checkpointing no layer is
// recomputed: its memory is emptied after its forward under autograd's saved weights and refilled
// before its backward. Counted here on the CPU with the shipped tiny model (2 layers) in one
// process, whose all-gathers are copies.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "tests/support/autograd_graph.h"
#include "tests/support/one_rank_shard_comm.h"
#include "tests/support/random_batches.h"
#include "worker/model/causal_lm.h"
#include "worker/model_weights.h"
#include "worker/train/trainer.h"
#include "worker/train/zero3_parameters.h"

namespace pdsd {
namespace {

using Counted = testing::OneRankShardComm;

// The shipped tiny model (2 layers) under ZeRO-3 in one process, its all-gathers counted copies;
// the layers frozen (a LoRA base, in effect) or trainable, the outer unit trainable, and the keep
// budget holding `keep_layers` layers; with `slots`, the layers gathered into fixed gather slots
// (zero3_gather_engine copy, here over ordinary memory). With `only_layer` set, that layer alone
// trains (freeze tuning: the outer unit frozen too). With `layers` above 2, the model is made that
// deep by repeating its two layers: enough layers for the prefetches to fill every gather slot.
// With `resident`, every layer stays whole where it is (Zero3Options::resident_layers, cuda_graphs).
struct TinyZero3 {
  TinyZero3(bool layers_train, int64_t keep_layers, bool gradient_checkpointing = true, bool slots = false,
            std::optional<int64_t> only_layer = std::nullopt, int64_t layers = 2, bool resident = false) {
    const std::string dir = std::string(PDSD_SOURCE_DIR) + "/examples/tiny-qwen2";
    config = read_model_config(dir);
    EXPECT_EQ(config.num_hidden_layers, 2);
    ModelWeights weights = load_model_weights(dir, config);
    std::map<std::string, at::Tensor> params;
    for (const auto& [name, t] : weights.tensors) params[name] = t.to(at::kFloat).clone();
    const std::string prefix = "model.layers.";
    for (int64_t layer = 2; layer < layers; ++layer) {
      const std::string from = prefix + std::to_string(layer % 2) + ".";
      for (const auto& [name, t] : weights.tensors) {
        if (name.rfind(from, 0) == 0) params[prefix + std::to_string(layer) + "." + name.substr(from.size())] = t.to(at::kFloat).clone();
      }
    }
    config.num_hidden_layers = layers;
    const auto trains = [layers_train, only_layer](const std::string& name) {
      if (only_layer) return name.rfind("model.layers." + std::to_string(*only_layer) + ".", 0) == 0;
      return layers_train || name.rfind("model.layers.", 0) != 0;
    };
    const auto decays = [](const std::string&) { return true; };
    Zero3Options options;
    options.gradient_checkpointing = gradient_checkpointing;
    options.copy_engine_gathers = slots;
    ShardComm comm = counted.comm();
    comm.gather_memory = [](int64_t numel, const at::TensorOptions& o) { return at::empty({numel}, o); };
    CausalLM scratch(config, params);
    options.keep_gathered_bytes = keep_layers * Zero3Parameters(scratch, params, trains, decays, counted.comm(), options)
                                                    .gathered_layer_bytes();
    options.resident_layers = resident;
    model = std::make_unique<CausalLM>(config, params);
    z3 = std::make_unique<Zero3Parameters>(*model, params, trains, decays, comm, options);
    model->set_layer_runner(z3->layer_runner(), [z = z3.get()](int64_t layer) { return z->layer_trains(layer); });
  }
  ModelConfig config;
  Counted counted;
  std::unique_ptr<CausalLM> model;
  std::unique_ptr<Zero3Parameters> z3;
};

// The trainer driving ZeRO-3 as the job does: the outer unit around each step, its sharded update.
TrainerOptions trainer_options(Zero3Parameters& z3, int64_t steps, double lr) {
  TrainerOptions options;
  options.schedule = {.type = "constant", .peak = lr, .warmup_steps = 0, .total_steps = steps};
  options.log_to_console = false;
  options.before_forward = [&z3] { z3.gather_outer(); };
  options.after_forward = [&z3] { z3.release_outer(); };
  options.sharded_step = [&z3](double rate, double max_norm) { return z3.step(rate, max_norm); };
  options.sharded_state_bytes = [&z3] { return z3.state_bytes(); };
  options.sharded_state_tensors = [&z3] { return z3.state_tensors(); };
  return options;
}

// Trains the tiny model (2 layers) for 2 steps of 3 micro-batches under ZeRO-3 and returns the
// all-gathers issued by the end of each step.
std::vector<int64_t> gathers_per_step(bool layers_train, int64_t keep_layers, bool gradient_checkpointing = true,
                                      std::optional<int64_t> only_layer = std::nullopt, bool slots = false,
                                      int64_t layers = 2, bool resident = false) {
  TinyZero3 tiny(layers_train, keep_layers, gradient_checkpointing, slots, only_layer, layers, resident);
  Zero3Parameters& z3 = *tiny.z3;
  const ModelConfig& config = tiny.config;
  Counted& counted = tiny.counted;
  Trainer trainer(*tiny.model, {}, trainer_options(z3, /*steps=*/2, /*lr=*/1e-3));
  std::vector<int64_t> per_step;
  for (int64_t s = 0; s < 2; ++s) {
    trainer.step(testing::random_batches(config.vocab_size, /*count=*/3, /*rows=*/2, /*length=*/8));
    per_step.push_back(counted.gathers);
  }
  return per_step;
}

TEST(Zero3Gathers, EachLayerRunIsGatheredExceptAtTheTurns) {
  const std::vector<int64_t> per_step = gathers_per_step(/*layers_train=*/true, /*keep_layers=*/0);
  // Per step: the outer unit once; the first micro-batch gathers layer 0 and 1 for forward and
  // layer 0 again for backward (layer 1 stayed whole); the next two find layer 0 kept from the
  // backward before and gather layer 1 and layer 0 (for backward) only. The update changes every
  // layer, so the next step starts over. Without the turns: 1 + 3 × 4 = 13 per step.
  const int64_t expected = 1 + 3 + 2 + 2;
  ASSERT_EQ(per_step.size(), 2u);
  EXPECT_EQ(per_step[0], expected);
  EXPECT_EQ(per_step[1] - per_step[0], expected);
  // Without gradient checkpointing the backward's gathers refill the emptied memory instead of
  // feeding a recomputation: as many.
  for (const bool layers_train : {true, false}) {
    const std::vector<int64_t> once = gathers_per_step(layers_train, 0, /*gradient_checkpointing=*/false);
    EXPECT_EQ(once[0], expected) << layers_train;
    EXPECT_EQ(once[1] - once[0], layers_train ? expected : expected - 1) << "a frozen layer 0 stays at its turn";
  }
}

TEST(Zero3Gathers, KeptTrainableLayersAreGatheredOncePerStep) {
  // Both layers fit the keep budget: the outer unit and each layer once per step, whatever the
  // micro-batches; the update drops them.
  std::vector<int64_t> per_step = gathers_per_step(/*layers_train=*/true, /*keep_layers=*/2);
  EXPECT_EQ(per_step[0], 1 + 2);
  EXPECT_EQ(per_step[1] - per_step[0], 1 + 2);
  // One fits: layer 0 (released first) stays, layer 1 keeps only its turn: the first micro-batch
  // gathers both, the next two layer 1 alone.
  per_step = gathers_per_step(/*layers_train=*/true, /*keep_layers=*/1);
  EXPECT_EQ(per_step[0], 1 + 2 + 1 + 1);
  EXPECT_EQ(per_step[1] - per_step[0], 1 + 2 + 1 + 1);
}

TEST(Zero3Gathers, KeptFrozenLayersAreGatheredOncePerJob) {
  // The LoRA case: frozen layers never change, so once kept they are never gathered again; the
  // trainable outer unit still is, once per step.
  const std::vector<int64_t> per_step = gathers_per_step(/*layers_train=*/false, /*keep_layers=*/2);
  EXPECT_EQ(per_step[0], 1 + 2);
  EXPECT_EQ(per_step[1] - per_step[0], 1);
}

// One forward and backward of the hidden states, then one optimizer step, with the outer unit
// trainable and the layers frozen (a LoRA base, in effect) or trainable: the checkpointed layers
// autograd recorded (by their nodes), the embedding's gradient and the updated master weights.
struct Recompute {
  int64_t checkpointed = 0;
  int64_t bytes_after_forward = 0, bytes_after_backward = 0, layer_bytes = 0;  // whole layers held
  int64_t slots_after_forward = 0, slots_after_backward = 0;                   // gather slots held
  at::Tensor embedding_grad;
  std::vector<at::Tensor> masters;
};

Recompute run_layers(bool layers_train, bool gradient_checkpointing, int64_t keep_layers, bool slots = false) {
  TinyZero3 tiny(layers_train, keep_layers, gradient_checkpointing, slots);
  Zero3Parameters& z3 = *tiny.z3;
  CausalLM& fresh = *tiny.model;
  const ModelConfig& config = tiny.config;
  fresh.set_training(true);
  z3.gather_outer();
  at::manual_seed(7);
  const TrainBatch batch = testing::random_batches(config.vocab_size, 1, 2, 8).front();
  const at::Tensor h = fresh.hidden_states(batch.tokens);
  Recompute out;
  out.checkpointed = testing::count_nodes(testing::graph_nodes(h), "CheckpointedLayer");
  out.bytes_after_forward = z3.layer_bytes_held();
  out.slots_after_forward = z3.gather_slots_in_use();
  (h * h).sum().backward();
  out.bytes_after_backward = z3.layer_bytes_held();
  out.slots_after_backward = z3.gather_slots_in_use();
  out.layer_bytes = z3.gathered_layer_bytes();
  out.embedding_grad = fresh.parameters().at("model.embed_tokens.weight").grad().clone();
  EXPECT_EQ(z3.runs_without_recompute(), 2 - out.checkpointed);
  z3.release_outer();
  z3.step(/*lr=*/1e-2, /*max_grad_norm=*/0);
  for (const auto& [name, tensor] : z3.state_tensors()) {
    if (name.rfind("param@", 0) == 0) out.masters.push_back(tensor.clone());
  }
  return out;
}

void expect_same_training(const Recompute& a, const Recompute& b) {
  ASSERT_TRUE(a.embedding_grad.defined() && b.embedding_grad.defined());
  EXPECT_GT(a.embedding_grad.abs().max().item<double>(), 0);
  EXPECT_TRUE(at::allclose(a.embedding_grad, b.embedding_grad, 1e-5, 1e-7));
  ASSERT_EQ(a.masters.size(), b.masters.size());
  for (size_t i = 0; i < a.masters.size(); ++i) EXPECT_TRUE(at::allclose(a.masters[i], b.masters[i], 1e-5, 1e-7)) << i;
}

TEST(Zero3Recompute, NoLayerIsRecomputedWithoutGradientCheckpointing) {
  size_t frozen_pieces = 0;
  for (const bool layers_train : {false, true}) {
    SCOPED_TRACE(layers_train ? "trainable layers" : "frozen layers");
    const Recompute all = run_layers(layers_train, /*gradient_checkpointing=*/true, /*keep_layers=*/0);
    EXPECT_EQ(all.checkpointed, 2) << "checkpointing on: every layer recomputes";
    EXPECT_EQ(run_layers(layers_train, true, 2).checkpointed, 2) << "kept whole or not";
    // Between forward and backward only the last layer is whole (kept for its backward, next), as
    // with the recompute: layer 0's memory went back under the saved weights. After backward layer
    // 0 is, at its turn.
    EXPECT_EQ(all.bytes_after_forward, all.layer_bytes);
    const Recompute none = run_layers(layers_train, false, 0);
    EXPECT_EQ(none.checkpointed, 0) << "nothing kept: refilled in place for backward";
    EXPECT_EQ(none.bytes_after_forward, none.layer_bytes) << "layer 0 emptied after its forward";
    EXPECT_EQ(none.bytes_after_backward, none.layer_bytes) << "layer 1 emptied after its backward, layer 0 at its turn";
    // Gathered into fixed gather slots: a layer's memory is the slot's, moved out from under the
    // saved weights after the forward and a fresh gather's moved back for the backward. Nothing is
    // copied out of a slot: the last layer waits for its backward in its slot, layer 0 at its turn.
    const Recompute slotted = run_layers(layers_train, false, 0, /*slots=*/true);
    EXPECT_EQ(slotted.checkpointed, 0);
    EXPECT_EQ(slotted.bytes_after_forward, slotted.layer_bytes);
    EXPECT_EQ(slotted.slots_after_forward, 1) << "the last layer stays in its slot for its backward";
    EXPECT_EQ(slotted.slots_after_backward, 1) << "layer 0 stays in its slot at its turn, layer 1's slot is free";
    expect_same_training(slotted, all);
    const Recompute one = run_layers(layers_train, false, 1);
    EXPECT_EQ(one.checkpointed, 0) << "layer 0 kept, layer 1 not";
    const Recompute both = run_layers(layers_train, false, 2);
    EXPECT_EQ(both.checkpointed, 0);
    EXPECT_EQ(both.bytes_after_forward, 2 * both.layer_bytes) << "both kept";
    // Either way backward computes the same gradients, and (trainable layers: reduced by the hook
    // when not recomputed) the step makes the same weights.
    expect_same_training(none, all);
    expect_same_training(one, all);
    expect_same_training(both, all);
    if (!layers_train) frozen_pieces = all.masters.size();
    if (layers_train) EXPECT_GT(all.masters.size(), frozen_pieces) << "the layers' masters are compared too";
  }
}

TEST(Zero3Gathers, SlotsGoRoundWithNoneStillHeldWhenItsTurnComes) {
  // Six layers gathered into the four fixed slots (zero3_gather_engine copy): the prefetches keep
  // three whole at a time, and 2 steps of 3 micro-batches go round the slots many times; a slot
  // still held when its turn came would throw. The gathers are the same as without slots, with and
  // without checkpointing, for trainable and frozen layers and for freeze (layer 4 trains, layers
  // 0-3 run without a graph).
  const int64_t layers = 6;
  for (const bool checkpointing : {false, true}) {
    for (const bool layers_train : {false, true}) {
      EXPECT_EQ(gathers_per_step(layers_train, 0, checkpointing, std::nullopt, /*slots=*/true, layers),
                gathers_per_step(layers_train, 0, checkpointing, std::nullopt, false, layers))
          << layers_train << checkpointing;
    }
    EXPECT_EQ(gathers_per_step(false, 0, checkpointing, /*only_layer=*/4, /*slots=*/true, layers),
              gathers_per_step(false, 0, checkpointing, 4, false, layers))
        << checkpointing;
  }
}

TEST(Zero3Gathers, FreezeGathersFrozenLayersOnceAndAFrozenOuterUnitOncePerJob) {
  // Freeze tuning: layer 1 trains, layer 0 and the outer unit (embeddings) are frozen. Without a
  // keep budget: per step the outer unit once; layer 0 once per micro-batch (it has no backward);
  // layer 1 once per micro-batch (the last layer stays whole into its backward).
  std::vector<int64_t> per_step = gathers_per_step(false, 0, /*gradient_checkpointing=*/false, /*only_layer=*/1);
  EXPECT_EQ(per_step[0], 1 + 3 + 3);
  EXPECT_EQ(per_step[1] - per_step[0], 1 + 3 + 3);
  // With room for everything: the first step gathers each unit once; after it only layer 1, whose
  // weights the update changed. The frozen outer unit stays whole across steps, as frozen layers do.
  per_step = gathers_per_step(false, /*keep_layers=*/1000, false, 1);
  EXPECT_EQ(per_step[0], 1 + 1 + 1);
  EXPECT_EQ(per_step[1] - per_step[0], 1);
}

// Freeze tuning under ZeRO-3 (layer 1 trains, layer 0 and the outer unit frozen): layer 0 lies
// below the first layer that trains, so it runs as in evaluation, gathered once and let go at once,
// with no graph, no backward, no recompute. Layer 1 trains the same with or without checkpointing.
TEST(Zero3Freeze, LayersBelowTheFirstThatTrainsRunWithoutAGraph) {
  std::vector<at::Tensor> masters[2];
  for (const bool checkpointing : {false, true}) {
    SCOPED_TRACE(checkpointing ? "checkpointing" : "no checkpointing");
    TinyZero3 tiny(/*layers_train=*/false, /*keep_layers=*/0, checkpointing, /*slots=*/false, /*only_layer=*/1);
    Zero3Parameters& z3 = *tiny.z3;
    CausalLM& model = *tiny.model;
    EXPECT_EQ(model.first_trained_layer(), 1);
    model.set_training(true);
    z3.gather_outer();
    at::manual_seed(7);
    const TrainBatch batch = testing::random_batches(tiny.config.vocab_size, 1, 2, 8).front();
    const at::Tensor h = model.hidden_states(batch.tokens);
    EXPECT_EQ(testing::count_nodes(testing::graph_nodes(h), "CheckpointedLayer"), checkpointing ? 1 : 0)
        << "layer 1 alone is checkpointed";
    EXPECT_EQ(z3.runs_without_recompute(), checkpointing ? 0 : 1) << "layer 1 alone runs for a backward";
    const int64_t gathers = tiny.counted.gathers;
    (h * h).sum().backward();
    EXPECT_EQ(tiny.counted.gathers, gathers) << "nothing is gathered for backward: layer 1 stayed at its turn, layer 0 has none";
    z3.release_outer();
    z3.step(/*lr=*/1e-2, /*max_grad_norm=*/0);
    for (const auto& [name, tensor] : z3.state_tensors()) {
      if (name.rfind("param@", 0) == 0) masters[checkpointing].push_back(tensor.clone());
    }
  }
  ASSERT_EQ(masters[0].size(), masters[1].size());
  ASSERT_FALSE(masters[0].empty());
  for (size_t i = 0; i < masters[0].size(); ++i) EXPECT_TRUE(at::allclose(masters[0][i], masters[1][i], 1e-5, 1e-7)) << i;
}

// Resident layers (cuda_graphs under ZeRO-3): every layer gathered once when the job starts; a
// trainable one again after each update, a frozen one never; the outer unit as without them.
TEST(Zero3Resident, LayersAreGatheredOnceAndAgainAfterEachUpdate) {
  for (const bool checkpointing : {false, true}) {
    SCOPED_TRACE(checkpointing ? "checkpointing" : "no checkpointing");
    std::vector<int64_t> per_step = gathers_per_step(/*layers_train=*/true, /*keep_layers=*/2, checkpointing, std::nullopt,
                                                     false, 2, /*resident=*/true);
    EXPECT_EQ(per_step[0], 2 + 1 + 2) << "at the start, the outer unit, the update's regathers";
    EXPECT_EQ(per_step[1] - per_step[0], 1 + 2);
    per_step = gathers_per_step(/*layers_train=*/false, 2, checkpointing, std::nullopt, false, 2, true);
    EXPECT_EQ(per_step[0], 2 + 1) << "frozen layers: at the start only";
    EXPECT_EQ(per_step[1] - per_step[0], 1) << "the trainable outer unit alone";
    // Freeze (layer 1 trains): layer 1 again after each update; the frozen outer unit is kept
    // within the budget, which counts the resident layers: with room for two layers only, it is not.
    per_step = gathers_per_step(false, /*keep_layers=*/1000, checkpointing, /*only_layer=*/1, false, 2, true);
    EXPECT_EQ(per_step[0], 2 + 1 + 1);
    EXPECT_EQ(per_step[1] - per_step[0], 1);
    per_step = gathers_per_step(false, /*keep_layers=*/2, checkpointing, /*only_layer=*/1, false, 2, true);
    EXPECT_EQ(per_step[1] - per_step[0], 1 + 1);
  }
}

TEST(Zero3Resident, TheLayersMustFitTheKeepBudget) {
  try {
    TinyZero3 tiny(true, /*keep_layers=*/1, true, false, std::nullopt, 2, /*resident=*/true);
    FAIL() << "two layers kept whole within a budget of one";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("raise it to at least 1, or set cuda_graphs: false"), std::string::npos) << e.what();
  }
}

// Three optimizer steps of three micro-batches: each step's loss and, after the last, the master
// weights. The steps after the first train on weights gathered again after an update (in place,
// when resident): stale ones would change the losses.
struct Trained {
  std::vector<double> losses;
  std::vector<at::Tensor> masters;
  std::vector<const void*> addresses;  // the model's layer weights', after each step
};

Trained train_three_steps(bool layers_train, bool checkpointing, std::optional<int64_t> only_layer, bool resident) {
  TinyZero3 tiny(layers_train, /*keep_layers=*/resident ? 2 : 0, checkpointing, false, only_layer, 2, resident);
  Zero3Parameters& z3 = *tiny.z3;
  Trainer trainer(*tiny.model, {}, trainer_options(z3, /*steps=*/3, /*lr=*/1e-2));
  Trained out;
  for (int64_t s = 0; s < 3; ++s) {
    at::manual_seed(100 + s);
    out.losses.push_back(trainer.step(testing::random_batches(tiny.config.vocab_size, 3, 2, 8)).loss);
    for (const auto& [name, t] : tiny.model->parameters()) {
      if (decoder_layer_of(name) >= 0) out.addresses.push_back(t.defined() ? t.data_ptr() : nullptr);
    }
  }
  for (const auto& [name, tensor] : z3.state_tensors()) {
    if (name.rfind("param@", 0) == 0) out.masters.push_back(tensor.clone());
  }
  return out;
}

TEST(Zero3Resident, TrainsAsGatheredLayersDoWithTheWeightsWhereTheyWere) {
  for (const bool checkpointing : {false, true}) {
    for (int method = 0; method < 3; ++method) {  // trainable layers, frozen layers, freeze (layer 1 trains)
      SCOPED_TRACE(std::string(checkpointing ? "checkpointing, " : "") + std::to_string(method));
      const bool layers_train = method == 0;
      const std::optional<int64_t> only_layer = method == 2 ? std::optional<int64_t>(1) : std::nullopt;
      const Trained gathered = train_three_steps(layers_train, checkpointing, only_layer, /*resident=*/false);
      const Trained resident = train_three_steps(layers_train, checkpointing, only_layer, /*resident=*/true);
      ASSERT_EQ(resident.losses.size(), 3u);
      EXPECT_GT(std::abs(gathered.losses[2] - gathered.losses[0]), 1e-3) << "training moved";
      for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(resident.losses[i], gathered.losses[i], 1e-5) << "step " << i + 1;
      ASSERT_EQ(resident.masters.size(), gathered.masters.size());
      ASSERT_FALSE(resident.masters.empty());
      for (size_t i = 0; i < resident.masters.size(); ++i) {
        EXPECT_TRUE(at::allclose(resident.masters[i], gathered.masters[i], 1e-5, 1e-7)) << i;
      }
      // Resident: the weights stay put from step to step; gathered: nothing whole between steps.
      const size_t n = resident.addresses.size() / 3;
      for (size_t i = 0; i < n; ++i) {
        EXPECT_NE(resident.addresses[i], nullptr);
        EXPECT_EQ(resident.addresses[i], resident.addresses[n + i]);
        EXPECT_EQ(resident.addresses[i], resident.addresses[2 * n + i]);
      }
    }
  }
}

TEST(Zero3GatherEngine, AutoTakesTheCopyEnginesForLargeLayersOverNccl) {
  const int64_t qwen7b_layer = 466LL << 20, qwen05b_layer = 29LL << 20;
  EXPECT_TRUE(gathers_on_copy_engines("auto", /*over_nccl=*/true, 2, qwen7b_layer));
  EXPECT_FALSE(gathers_on_copy_engines("auto", true, 2, qwen05b_layer));
  EXPECT_TRUE(gathers_on_copy_engines("auto", true, 8, kCopyEngineLayerBytes));
  EXPECT_FALSE(gathers_on_copy_engines("auto", true, 8, kCopyEngineLayerBytes - 1));
  EXPECT_FALSE(gathers_on_copy_engines("auto", /*over_nccl=*/false, 2, qwen7b_layer)) << "Gloo has no copy engines";
  EXPECT_FALSE(gathers_on_copy_engines("auto", true, /*world_size=*/1, qwen7b_layer)) << "one rank gathers nothing";
  EXPECT_TRUE(gathers_on_copy_engines("copy", false, 2, 1)) << "copy is the user's word (gather slots over Gloo)";
  EXPECT_FALSE(gathers_on_copy_engines("sm", true, 2, qwen7b_layer));
}

}  // namespace
}  // namespace pdsd
