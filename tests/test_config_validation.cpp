// The job config: good files load as written, and each kind of bad input fails before any process
// starts with a message that names the file, the line and the key (docs/config.md).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/cuda_graphs_choice.h"
#include "common/error.h"
#include "common/job_config.h"

namespace pdsd {
namespace {

// A valid config on the shipped tiny model; each test changes one thing. Line numbers matter below.
std::string base_config(const std::string& extra = "") {
  return "model_name_or_path: examples/tiny-qwen2\n"  // line 1
         "dataset_dir: examples/data\n"                // line 2
         "dataset: tiny_alpaca\n"                      // line 3
         "output_dir: " + (std::filesystem::temp_directory_path() / "pdsd-test-config-out").string() + "\n" +  // 4
         "overwrite_output_dir: true\n" +              // line 5
         extra;                                        // line 6 on
}

// Parses and returns the error text; fails the test when parsing succeeds.
std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    parse_job_config(yaml, "job.yaml", overrides);
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a ConfigError for:\n" << yaml;
  return "";
}

TEST(ConfigValidation, ShippedConfigsLoad) {
  for (const char* path : {"configs/sft.yaml", "configs/lora.yaml", "configs/zero3.yaml"}) {
    JobConfig c = load_job_config(path);
    EXPECT_EQ(c.model_name_or_path, "examples/tiny-qwen2") << path;
    EXPECT_EQ(c.dataset, "tiny_alpaca,tiny_sharegpt") << path;
  }
  EXPECT_EQ(load_job_config("configs/lora.yaml").finetuning_type, "lora");
  EXPECT_EQ(load_job_config("configs/zero3.yaml").zero_stage, 3);
}

TEST(ConfigValidation, ValuesAndDefaults) {
  JobConfig c = parse_job_config(base_config("learning_rate: 1.0e-4\nlora_target: [q_proj, v_proj]\nbf16: true\n"), "job.yaml");
  EXPECT_DOUBLE_EQ(c.learning_rate, 1e-4);
  EXPECT_EQ(c.lora_target, "q_proj,v_proj");
  EXPECT_TRUE(c.bf16);
  EXPECT_EQ(c.cutoff_len, 2048);  // LLaMA-Factory's default
  EXPECT_EQ(c.origins.at("bf16").line, 8);
}

TEST(ConfigValidation, CommandLineOverridesWin) {
  JobConfig c = parse_job_config(base_config("learning_rate: 1.0e-4\n"), "job.yaml", {"learning_rate=3e-5", "max_steps=7"});
  EXPECT_DOUBLE_EQ(c.learning_rate, 3e-5);
  EXPECT_EQ(c.max_steps, 7);
}

TEST(ConfigValidation, ResolvedYamlRoundTrips) {
  JobConfig c = parse_job_config(base_config("lora_rank: 16\npacking: true\n"), "job.yaml");
  JobConfig again = parse_job_config(c.to_yaml(), "resolved.yaml");
  EXPECT_EQ(again.lora_rank, 16);
  EXPECT_TRUE(again.packing);
  EXPECT_EQ(again.to_yaml(), c.to_yaml());
}

TEST(ConfigValidation, UnknownKeySuggestsTheClosest) {
  std::string e = error_of(base_config("learning_rat: 1.0e-4\n"));
  EXPECT_NE(e.find("job.yaml:6"), std::string::npos) << e;
  EXPECT_NE(e.find("'learning_rat'"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'learning_rate'"), std::string::npos) << e;
}

TEST(ConfigValidation, WrongTypeForAnInteger) {
  std::string e = error_of(base_config("cutoff_len: 1024.5\n"));
  EXPECT_NE(e.find("job.yaml:6: key 'cutoff_len': expected a whole number, got '1024.5'"), std::string::npos) << e;
}

TEST(ConfigValidation, WrongTypeForABool) {
  std::string e = error_of(base_config("bf16: maybe\n"));
  EXPECT_NE(e.find("job.yaml:6: key 'bf16': expected true or false"), std::string::npos) << e;
}

TEST(ConfigValidation, WrongTypeForANumber) {
  std::string e = error_of(base_config("learning_rate: fast\n"));
  EXPECT_NE(e.find("job.yaml:6: key 'learning_rate': expected a number, got 'fast'"), std::string::npos) << e;
}

TEST(ConfigValidation, ListWhereAValueBelongs) {
  std::string e = error_of(base_config("seed: [1, 2]\n"));
  EXPECT_NE(e.find("job.yaml:6: key 'seed': expected a single value, got a list"), std::string::npos) << e;
}

TEST(ConfigValidation, OutOfRange) {
  EXPECT_NE(error_of(base_config("learning_rate: -1\n")).find("job.yaml:6: key 'learning_rate': must be > 0, got -1"),
            std::string::npos);
  EXPECT_NE(error_of(base_config("zero_stage: 4\n")).find("key 'zero_stage': must be in [0, 3], got 4"), std::string::npos);
  EXPECT_NE(error_of(base_config("lora_dropout: 1.0\n")).find("key 'lora_dropout': must be in [0, 1), got 1.0"),
            std::string::npos);
}

TEST(ConfigValidation, BadChoiceSuggestsTheClosest) {
  std::string e = error_of(base_config("lr_scheduler_type: cosin\n"));
  EXPECT_NE(e.find("job.yaml:6: key 'lr_scheduler_type': must be one of linear, cosine"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'cosine'"), std::string::npos) << e;
}

TEST(ConfigValidation, Bf16AndFp16Together) {
  std::string e = error_of(base_config("bf16: true\nfp16: true\n"));
  EXPECT_NE(e.find("job.yaml:7: key 'fp16': bf16 and fp16 are both true"), std::string::npos) << e;
}

TEST(ConfigValidation, WarmupStepsAndRatioTogether) {
  std::string e = error_of(base_config("warmup_steps: 10\nwarmup_ratio: 0.1\n"));
  EXPECT_NE(e.find("job.yaml:7: key 'warmup_ratio'"), std::string::npos) << e;
}

TEST(ConfigValidation, CudaGraphsWithZero3CopyGathersOrNoKeepBudgetOrCheckpointedLoraDropout) {
  std::string e = error_of(base_config("cuda_graphs: true\nzero_stage: 3\nzero3_gather_engine: copy\n"));
  EXPECT_NE(e.find("job.yaml:6: key 'cuda_graphs': with zero_stage: 3 keeps every layer whole in memory of its own"),
            std::string::npos) << e;
  e = error_of(base_config("cuda_graphs: true\nzero_stage: 3\nzero3_keep_gathered_mb: 0\n"));
  EXPECT_NE(e.find("key 'cuda_graphs': with zero_stage: 3 keeps every layer whole within zero3_keep_gathered_mb, which is 0"),
            std::string::npos) << e;
  EXPECT_NO_THROW(parse_job_config(base_config("cuda_graphs: true\nzero_stage: 3\n"), "job.yaml", {}));
  e = error_of(base_config("cuda_graphs: true\nfinetuning_type: lora\nlora_dropout: 0.1\n"));
  EXPECT_NE(e.find("key 'cuda_graphs': with gradient_checkpointing, the recomputed layer would draw other dropout masks"),
            std::string::npos) << e;
  EXPECT_NO_THROW(parse_job_config(base_config("cuda_graphs: true\nfinetuning_type: lora\nlora_dropout: 0.1\n"
                                                    "gradient_checkpointing: false\n"), "job.yaml", {}));
}

// cuda_graphs auto takes the graphs where they can run and the layers are small (host-bound);
// true asks for them and names why they cannot run.
TEST(CudaGraphsChoice, AutoTakesThemForSmallLayersWhereTheyCanRun) {
  JobConfig c;
  ASSERT_EQ(c.cuda_graphs, "auto");
  const int64_t qwen05b_layer = 29LL << 20, qwen7b_layer = 466LL << 20;
  CudaGraphsFacts small{.on_gpu = true, .padding_free = true, .layer_bytes = qwen05b_layer, .all_layers_bytes = 24 * qwen05b_layer};
  EXPECT_TRUE(choose_cuda_graphs(c, small).on);
  CudaGraphsFacts large = small;
  large.layer_bytes = qwen7b_layer;
  EXPECT_FALSE(choose_cuda_graphs(c, large).on);
  EXPECT_NE(choose_cuda_graphs(c, large).why.find("466 MiB keep the GPU busy"), std::string::npos);
  CudaGraphsFacts cpu = small;
  cpu.on_gpu = false;
  EXPECT_FALSE(choose_cuda_graphs(c, cpu).on);
  CudaGraphsFacts padded = small;
  padded.padding_free = false;
  EXPECT_FALSE(choose_cuda_graphs(c, padded).on);
  // LoRA dropout recomputed under checkpointing would draw other masks.
  c.finetuning_type = "lora", c.lora_dropout = 0.1;
  EXPECT_FALSE(choose_cuda_graphs(c, small).on);
  c.gradient_checkpointing = false;
  EXPECT_TRUE(choose_cuda_graphs(c, small).on);
  // ZeRO-3: every layer whole within the keep budget (2048 MiB by default), not in copy-engine slots.
  c = JobConfig{};
  c.zero_stage = 3, c.finetuning_type = "full";
  EXPECT_TRUE(choose_cuda_graphs(c, small).on);
  c.zero3_keep_gathered_mb = 1000;
  EXPECT_FALSE(choose_cuda_graphs(c, small).on) << "full: 24 layers of 29 MiB and their gradients do not fit 1000 MiB";
  c.finetuning_type = "lora";
  EXPECT_TRUE(choose_cuda_graphs(c, small).on) << "LoRA: the frozen layers alone";
  c.zero3_keep_gathered_mb = 600;
  EXPECT_FALSE(choose_cuda_graphs(c, small).on) << "24 layers of 29 MiB do not fit 600 MiB";
  c.zero3_keep_gathered_mb = 2048, c.zero3_gather_engine = "copy";
  EXPECT_FALSE(choose_cuda_graphs(c, small).on);
  // true where they cannot run: an error naming the key and the reason; false: never.
  c = JobConfig{};
  c.cuda_graphs = "true";
  EXPECT_TRUE(choose_cuda_graphs(c, large).on) << "true overrides the size rule";
  try {
    choose_cuda_graphs(c, cpu);
    FAIL() << "cuda_graphs: true on the CPU";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("cuda_graphs: true, but the worker runs on the CPU"), std::string::npos) << e.what();
  }
  c.cuda_graphs = "false";
  EXPECT_FALSE(choose_cuda_graphs(c, small).on);
  // The YAML booleans read as the key's words.
  EXPECT_EQ(parse_job_config(base_config("cuda_graphs: true\n"), "job.yaml", {}).cuda_graphs, "true");
  EXPECT_EQ(parse_job_config(base_config(""), "job.yaml", {"cuda_graphs=false"}).cuda_graphs, "false");
  EXPECT_EQ(parse_job_config(base_config("cuda_graphs: yes\n"), "job.yaml", {}).cuda_graphs, "true");
  EXPECT_EQ(parse_job_config(base_config("cuda_graphs: Off\n"), "job.yaml", {}).cuda_graphs, "false");
  EXPECT_NE(error_of(base_config("cuda_graphs: sometimes\n")).find("cuda_graphs"), std::string::npos);
}

TEST(ConfigValidation, ResumeWhileOverwriting) {
  std::string e = error_of(base_config("resume_from_checkpoint: auto\n"));
  EXPECT_NE(e.find("job.yaml:5: key 'overwrite_output_dir'"), std::string::npos) << e;
  EXPECT_NE(e.find("would delete the checkpoints"), std::string::npos) << e;
}

TEST(ConfigValidation, MissingRequiredKey) {
  std::string e = error_of("dataset: tiny_alpaca\ndataset_dir: examples/data\noutput_dir: /tmp/x\n");
  EXPECT_NE(e.find("job.yaml: key 'model_name_or_path': is required"), std::string::npos) << e;
}

TEST(ConfigValidation, ModelDirWithoutConfigJson) {
  std::string e = error_of("model_name_or_path: examples/data\n" + base_config().substr(base_config().find('\n') + 1));
  EXPECT_NE(e.find("job.yaml:1: key 'model_name_or_path'"), std::string::npos) << e;
  EXPECT_NE(e.find("has no config.json"), std::string::npos) << e;
}

TEST(ConfigValidation, DatasetNotInDatasetInfo) {
  std::string e = error_of(base_config(), {"dataset=tiny_alpaka"});
  EXPECT_NE(e.find("command line override 'dataset=tiny_alpaka': key 'dataset'"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'tiny_alpaca'"), std::string::npos) << e;
}

TEST(ConfigValidation, UnknownLoraTarget) {
  std::string e = error_of(base_config("lora_target: q_proj,v_porj\n"));
  EXPECT_NE(e.find("job.yaml:6: key 'lora_target': 'v_porj' is not a module"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'v_proj'"), std::string::npos) << e;
}

TEST(ConfigValidation, DuplicateKey) {
  std::string e = error_of(base_config("seed: 1\nseed: 2\n"));
  EXPECT_NE(e.find("job.yaml:7: key 'seed': is given twice (first at line 6)"), std::string::npos) << e;
}

TEST(ConfigValidation, NotYaml) {
  std::string e = error_of(base_config("learning_rate: [1e-4\n"));
  EXPECT_NE(e.find("job.yaml:"), std::string::npos) << e;
  EXPECT_NE(e.find("not valid YAML"), std::string::npos) << e;
}

TEST(ConfigValidation, MalformedOverride) {
  std::string e = error_of(base_config(), {"learning_rate"});
  EXPECT_NE(e.find("override 'learning_rate' must look like key=value"), std::string::npos) << e;
}

TEST(ConfigValidation, NonEmptyOutputDirWithoutOverwrite) {
  auto dir = std::filesystem::temp_directory_path() / "pdsd-test-config-nonempty";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "something") << "x";
  std::string yaml = "model_name_or_path: examples/tiny-qwen2\ndataset_dir: examples/data\ndataset: tiny_alpaca\n"
                     "output_dir: " + dir.string() + "\n";
  std::string e = error_of(yaml);
  EXPECT_NE(e.find("job.yaml:4: key 'output_dir'"), std::string::npos) << e;
  EXPECT_NE(e.find("exists and is not empty"), std::string::npos) << e;
  std::filesystem::remove_all(dir);
}

TEST(ConfigValidation, MissingFileNamesThePath) {
  try {
    load_job_config("configs/does-not-exist.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("configs/does-not-exist.yaml: cannot open"), std::string::npos);
  }
}

}  // namespace
}  // namespace pdsd

namespace pdsd {
namespace {

TEST(ConfigValidation, DocsListEveryKeyAsTheSchemaSays) {
  std::ifstream in("docs/config.md");
  std::string doc{std::istreambuf_iterator<char>(in), {}};
  EXPECT_NE(doc.find(job_config_reference_markdown()), std::string::npos)
      << "docs/config.md is out of date: regenerate its table with pdsd-worker --print-config-keys";
}

}  // namespace
}  // namespace pdsd
