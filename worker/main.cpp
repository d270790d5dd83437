// pdsd-worker: one process per GPU (or per CPU slot), started by pdsd-launch (or torchrun) with
// RANK / WORLD_SIZE / ... in its environment.
//
//   pdsd-worker configs/sft.yaml [key=value ...]
//
// It validates the job config, joins the other ranks (CPU collectives over Gloo when WORLD_SIZE > 1),
// and runs the SFT job (worker/train/sft_job.h): data-parallel training with replicated weights.
// The sharded engine (ZeRO) comes next; zero_stage above 0 is refused until then.
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
#include "worker/dist/gloo_collectives.h"
#include "worker/train/sft_job.h"

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

  std::unique_ptr<pdsd::dist::Collectives> collectives;
  if (env.world_size > 1) {
    pdsd::dist::GlooCollectivesOptions options;
    options.timeout = std::chrono::seconds(config.ddp_timeout);
    collectives = pdsd::dist::make_gloo_collectives(env, options);
  }
  pdsd::SftJobResult r = pdsd::run_sft_job(config, env, collectives.get());
  if (env.rank == 0) {
    pdsd::log::info("done: ", r.steps, " steps in ", r.runtime_s, " s; loss ", r.first_loss, " -> ", r.final_loss,
                    r.eval_loss >= 0 ? pdsd::str("; eval loss ", r.eval_loss) : std::string(), "; wrote ", r.artifact,
                    " to ", config.output_dir);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return pdsd::guarded_main(run, argc, argv); }
