// Trainer::train pipelines steps one deep (worker/train/trainer.h): step s + 1 is queued before step
// s's figures are read back and its on_step_end runs. These check, on the CPU with the shipped tiny
// model, that the pipelining happens, that it changes no figure, and that every step whose
// on_step_end may read the state (a scheduled save, a save request, the last step) sees exactly that
// step's state, as a step-at-a-time run does.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "tests/support/random_batches.h"
#include "worker/model/causal_lm.h"
#include "worker/model_weights.h"
#include "worker/train/trainer.h"

namespace pdsd {
namespace {

struct TinyRun {
  ModelConfig config;
  std::unique_ptr<CausalLM> model;
  std::vector<TrainableParameter> trainable;

  TinyRun() {
    const std::string dir = std::string(PDSD_SOURCE_DIR) + "/examples/tiny-qwen2";
    config = read_model_config(dir);
    ModelWeights weights = load_model_weights(dir, config);
    std::map<std::string, at::Tensor> params;
    for (const auto& [name, t] : weights.tensors) params[name] = t.to(at::kFloat).clone();
    model = std::make_unique<CausalLM>(config, std::move(params));
    for (auto& [name, t] : model->parameters()) {
      t.requires_grad_(true);
      trainable.push_back({name, t, true});
    }
  }

  // The same two micro-batches for a step on every run (seeded by the step).
  std::vector<TrainBatch> batches(int64_t step) const {
    at::manual_seed(1000 + step);
    return testing::random_batches(config.vocab_size, /*count=*/2, /*rows=*/2, /*length=*/12);
  }

  // The state in one number per weight: differs after any further update.
  std::vector<double> fingerprint() const {
    std::vector<double> out;
    for (const auto& p : trainable) out.push_back(p.tensor.detach().to(at::kDouble).sum().item<double>());
    return out;
  }
};

TrainerOptions tiny_options(int64_t steps) {
  TrainerOptions options;
  options.schedule = {.type = "cosine", .peak = 1e-3, .warmup_steps = 1, .total_steps = steps};
  options.logging_steps = 1000;
  options.log_to_console = false;
  return options;
}

// One step at a time (Trainer::step settles every step): the reference figures and states.
struct StepByStep {
  std::vector<StepRecord> records;
  std::vector<std::vector<double>> states;  // [s - 1]: after step s
};

StepByStep step_by_step(int64_t steps) {
  TinyRun run;
  Trainer trainer(*run.model, run.trainable, tiny_options(steps));
  StepByStep out;
  for (int64_t s = 0; s < steps; ++s) {
    out.records.push_back(trainer.step(run.batches(s)));
    out.states.push_back(run.fingerprint());
  }
  return out;
}

TEST(TrainerPipeline, NextStepIsQueuedBeforeAStepEndsUnlessItMustSettle) {
  const int64_t steps = 6;
  TinyRun run;
  std::vector<std::string> events;
  TrainerOptions options = tiny_options(steps);
  options.settle_after = [](int64_t step) { return step == 3; };
  options.on_step_end = [&](const StepRecord& r) { events.push_back("end " + std::to_string(r.step)); };
  Trainer trainer(*run.model, run.trainable, options);
  trainer.train(steps, [&](int64_t s) {
    events.push_back("queue " + std::to_string(s + 1));
    return run.batches(s);
  });
  const std::vector<std::string> want = {"queue 1", "queue 2", "end 1", "queue 3", "end 2", "end 3",  // 3 settles
                                         "queue 4", "queue 5", "end 4", "queue 6", "end 5", "end 6"};  // 6 is the last
  EXPECT_EQ(events, want);
}

TEST(TrainerPipeline, SameFiguresAsStepByStepAndASettledStepSeesItsOwnState) {
  const int64_t steps = 6;
  const StepByStep ref = step_by_step(steps);
  TinyRun run;
  std::map<int64_t, std::vector<double>> seen;
  TrainerOptions options = tiny_options(steps);
  options.settle_after = [](int64_t step) { return step == 3; };
  options.on_step_end = [&](const StepRecord& r) { seen[r.step] = run.fingerprint(); };
  Trainer trainer(*run.model, run.trainable, options);
  auto records = trainer.train(steps, [&](int64_t s) { return run.batches(s); });
  ASSERT_EQ(records.size(), static_cast<size_t>(steps));
  for (int64_t s = 0; s < steps; ++s) {
    EXPECT_EQ(records[s].step, s + 1);
    EXPECT_DOUBLE_EQ(records[s].loss, ref.records[s].loss) << "step " << s + 1;
    EXPECT_DOUBLE_EQ(records[s].grad_norm, ref.records[s].grad_norm) << "step " << s + 1;
    EXPECT_DOUBLE_EQ(records[s].lr, ref.records[s].lr) << "step " << s + 1;
    EXPECT_GT(records[s].tokens_per_s, 0) << "step " << s + 1;
  }
  EXPECT_EQ(seen.at(3), ref.states[2]) << "step 3 settles: its on_step_end sees its own state";
  EXPECT_EQ(seen.at(6), ref.states[5]) << "the last step sees its own state";
  EXPECT_NE(seen.at(1), ref.states[0]) << "step 1 does not settle: step 2 already ran behind it";
}

// Each step's logged time is its own: on the CPU the host computes a step while queueing it, so a
// step's end is when it was queued, not when the host got round to reading it (which would give the
// first step two steps' worth and the last next to none). The clock here moves only while a step
// computes, 10 ms per step, so every step must log exactly 10 ms, whatever the machine's load.
TEST(TrainerPipeline, EveryStepLogsItsOwnTime) {
  const int64_t steps = 8;
  TinyRun run;
  auto fake_now = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  TrainerOptions options = tiny_options(steps);
  options.clock = [&] { return fake_now; };
  options.before_forward = [&] { fake_now += std::chrono::milliseconds(10); };
  Trainer trainer(*run.model, run.trainable, options);
  auto records = trainer.train(steps, [&](int64_t s) { return run.batches(s); });
  ASSERT_EQ(records.size(), static_cast<size_t>(steps));
  for (const auto& r : records) {
    EXPECT_NEAR(static_cast<double>(r.tokens) / r.tokens_per_s, 0.010, 1e-9) << "step " << r.step << "'s time";
    EXPECT_NEAR(r.elapsed_s, 0.010 * static_cast<double>(r.step), 1e-9) << "step " << r.step << " ends after its own compute";
  }
}

TEST(TrainerPipeline, ARequestPolledInAStepIsActedOnAtTheNextOneSettled) {
  const int64_t steps = 6;
  const StepByStep ref = step_by_step(steps);
  TinyRun run;
  int64_t polls = 0;
  std::map<int64_t, std::vector<double>> at_request;
  TrainerOptions options = tiny_options(steps);
  options.poll_request = [&] { return ++polls == 2 ? int64_t{1} : int64_t{0}; };  // a save asked in step 2
  options.on_step_end = [&](const StepRecord& r) {
    if (r.request > 0) at_request[r.step] = run.fingerprint();
  };
  Trainer trainer(*run.model, run.trainable, options);
  auto records = trainer.train(steps, [&](int64_t s) { return run.batches(s); });
  ASSERT_EQ(at_request.size(), 1u) << "the request is acted on once";
  ASSERT_TRUE(at_request.count(3)) << "read back with step 2 behind which step 3 was queued: acted on at step 3";
  EXPECT_EQ(at_request.at(3), ref.states[2]) << "and step 3 settled: the save sees step 3's state";
  EXPECT_EQ(records[2].request, 1);
  EXPECT_EQ(records[1].request, 0);
}

TEST(TrainerPipeline, AStopRequestEndsTrainingAtTheSettledStep) {
  const int64_t steps = 6;
  TinyRun run;
  int64_t polls = 0, agreed = 0;
  TrainerOptions options = tiny_options(steps);
  options.poll_request = [&] { return ++polls == 2 ? int64_t{2} : int64_t{0}; };  // SIGTERM in step 2
  options.on_step_end = [&](const StepRecord& r) { agreed = r.request; };
  options.should_stop = [&] { return agreed == 2; };
  Trainer trainer(*run.model, run.trainable, options);
  auto records = trainer.train(steps, [&](int64_t s) { return run.batches(s); });
  EXPECT_EQ(records.size(), 3u);
  EXPECT_EQ(trainer.steps_done(), 3) << "nothing queued past the step that stops";
}

}  // namespace
}  // namespace pdsd
