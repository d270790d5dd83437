// pdsd-worker: one process per GPU (or per CPU slot), started by pdsd-launch (or torchrun) with
// RANK / WORLD_SIZE / ... in its environment.
//
//   pdsd-worker configs/sft.yaml [key=value ...]
//   pdsd-worker export [export.yaml] [key=value ...]     (worker/export/export_command.h)
//
// It validates the job config, joins the other ranks (NCCL on GPUs, Gloo on CPU when WORLD_SIZE > 1:
// worker/dist/backend_choice.h), and runs the SFT job (worker/train/sft_job.h): DDP or ZeRO-1/2/3.
#include <CLI/CLI.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/job_config.h"
#include "common/log.h"
#include "common/main_guard.h"
#include "common/worker_env.h"
#include "worker/control/progress_reporter.h"
#include "worker/dist/backend_choice.h"
#include "worker/export/export_command.h"
#include "worker/train/save_signals.h"
#include "worker/train/sft_job.h"

namespace {

// pdsd-worker export [export.yaml] [key=value ...]: LLaMA-Factory's export keys (worker/export/export_options.h).
int run_export(int argc, char** argv) {
  CLI::App app{"pdsd-worker export: a checkpoint (any world size, any ZeRO stage) or a PEFT adapter to a Hugging Face "
               "model dir with LoRA merged, or to a PEFT adapter dir (docs/checkpoints.md)"};
  std::string yaml_path;
  std::vector<std::string> settings;
  app.add_option("config", yaml_path, "export YAML, as llamafactory-cli export takes (optional)");
  app.add_option("settings", settings, "key=value: checkpoint, model_name_or_path, adapter_name_or_path, export_dir, "
                                       "export_size (GB per shard), infer_dtype, export_adapter");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (yaml_path.find('=') != std::string::npos) settings.insert(settings.begin(), yaml_path), yaml_path.clear();
  pdsd::log::init({.prefix = "export", .level = pdsd::log::level_from_env().value_or(pdsd::log::Level::info)});
  pdsd::log::info(pdsd::run_export(pdsd::parse_export_options(yaml_path, settings)));
  return 0;
}

int run(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "export") return run_export(argc - 1, argv + 1);
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

  std::unique_ptr<pdsd::dist::Collectives> collectives = pdsd::dist::make_job_collectives(config, env);
  pdsd::install_save_signal_handlers();  // SIGUSR1: save at the next step; SIGTERM/SIGINT: save and stop
  // Step, loss and tokens/s to the job's coordinator for `pdsd-ctl status` (when run by pdsd-launch).
  auto reporter = pdsd::ProgressReporter::from_env(env.rank, env.restart_count);
  pdsd::ProgressCallback on_progress;
  if (reporter) on_progress = [&](int64_t step, double loss, double tps) { reporter->report(step, loss, tps); };
  pdsd::SftJobResult r = pdsd::run_sft_job(config, env, collectives.get(), on_progress);
  if (!r.stopped.empty()) {
    if (env.rank == 0) pdsd::log::info(r.stopped);
    return 0;
  }
  if (env.rank == 0 && r.failed_saves > 0) {
    pdsd::log::warn(r.failed_saves, " checkpoint save(s) failed during this run (see the errors above); the newest saved is ",
                    r.last_checkpoint.empty() ? std::string("none") : r.last_checkpoint);
  }
  if (env.rank == 0) {
    pdsd::log::info("done: ", r.steps, " steps in ", r.runtime_s, " s; loss ", r.first_loss, " -> ", r.final_loss,
                    r.eval_loss >= 0 ? pdsd::str("; eval loss ", r.eval_loss) : std::string(), "; wrote ", r.artifact,
                    " to ", config.output_dir);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return pdsd::guarded_main(run, argc, argv); }
