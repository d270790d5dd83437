// pdsd-worker: one process per GPU (or per CPU slot), started by pdsd-launch (or torchrun) with
// RANK / WORLD_SIZE / ... in its environment.
//
//   pdsd-worker configs/sft.yaml [key=value ...]
//
// What it does today: validates the job config, reads the model's config.json, memory-maps and checks
// every weight tensor, and reports what it loaded. The trainer (issue 3) and the sharded engine
// (issue 4) come next; until then the worker says plainly that it did not train.
#include <CLI/CLI.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/job_config.h"
#include "common/log.h"
#include "common/worker_env.h"
#include "worker/model_config.h"
#include "worker/model_weights.h"

namespace {

int run(int argc, char** argv) {
  CLI::App app{"pdsd-worker: one training process (normally started by pdsd-launch)"};
  std::string config_path;
  std::vector<std::string> overrides;
  app.add_option("config", config_path, "job config YAML");
  app.add_option("overrides", overrides, "key=value settings that override the config file");
  bool print_keys = false;
  app.add_flag("--print-config-keys", print_keys, "print every job-config key as a Markdown table and exit");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (print_keys) {
    std::cout << pdsd::job_config_reference_markdown();
    return 0;
  }
  if (config_path.empty()) {
    std::cerr << "pdsd-worker: a job config YAML is required (see --help)\n";
    return 2;
  }

  pdsd::WorkerEnv env = pdsd::read_worker_env();
  pdsd::log::init({.prefix = pdsd::str("rank ", env.rank), .level = pdsd::log::level_from_env().value_or(pdsd::log::Level::info)});
  pdsd::JobConfig config = pdsd::load_job_config(config_path, overrides);
  pdsd::log::info("config ", config_path, " valid; world size ", env.world_size, ", local rank ", env.local_rank);

  auto t0 = std::chrono::steady_clock::now();
  pdsd::ModelConfig model = pdsd::read_model_config(config.model_name_or_path);
  pdsd::ModelWeights weights = pdsd::load_model_weights(config.model_name_or_path, model);
  // Reading every element proves the mapping is complete and gives a fingerprint ranks can compare.
  double sum_of_squares = 0;
  for (const auto& [name, t] : weights.tensors) sum_of_squares += t.to(at::kDouble).square().sum().item<double>();
  double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  pdsd::log::info("model ", config.model_name_or_path, ": ", model.model_type, ", ", model.num_hidden_layers,
                  " layers, hidden ", model.hidden_size, ", vocab ", model.vocab_size, "; ", weights.tensors.size(),
                  " tensors, ", model.parameter_count(), " parameters (", weights.bytes, " bytes, ", model.dtype,
                  ") mapped and checked in ", static_cast<int>(load_ms), " ms; sum of squares ", sum_of_squares);

  if (env.rank == 0) {
    std::filesystem::create_directories(config.output_dir);
    nlohmann::json report = {{"trained", false},
                             {"what_ran", "config validation, model config and safetensors weights loaded and checked"},
                             {"world_size", env.world_size},
                             {"model_type", model.model_type},
                             {"parameters", model.parameter_count()},
                             {"tensors", weights.tensors.size()},
                             {"weight_bytes", weights.bytes},
                             {"weights_sum_of_squares", sum_of_squares},
                             {"load_ms", load_ms}};
    std::ofstream(std::filesystem::path(config.output_dir) / "worker_report.json") << report.dump(2) << "\n";
    std::ofstream(std::filesystem::path(config.output_dir) / "resolved_config.yaml") << config.to_yaml();
  }
  pdsd::log::warn("no training step ran: the trainer is not built yet (this worker only loads and checks)");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const pdsd::InputError& e) {
    pdsd::log::error(e.what());
    return 2;
  } catch (const std::exception& e) {
    pdsd::log::error("fatal: ", e.what());
    return 1;
  }
}
