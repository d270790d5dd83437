#include "worker/train/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/log.h"
#include "worker/export/safetensors_writer.h"
#include "worker/safetensors_file.h"

namespace fs = std::filesystem;

namespace pdsd {

namespace {

std::map<std::string, at::Tensor> read_tensors(const std::string& path) {
  SafetensorsFile file(path);
  std::map<std::string, at::Tensor> out;
  for (const auto& e : file.entries()) {
    at::ScalarType type = e.dtype == "F32" ? at::kFloat : e.dtype == "U8" ? at::kByte : e.dtype == "I64" ? at::kLong : at::kDouble;
    out[e.name] = at::from_blob(const_cast<std::byte*>(file.data(e)), e.shape, at::TensorOptions().dtype(type)).clone();
  }
  return out;
}

std::vector<int64_t> checkpoint_steps(const std::string& output_dir) {
  std::vector<int64_t> steps;
  if (!fs::is_directory(output_dir)) return steps;
  for (const auto& entry : fs::directory_iterator(output_dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("checkpoint-", 0) != 0 || !fs::exists(entry.path() / "trainer_state.json")) continue;
    try {
      steps.push_back(std::stoll(name.substr(11)));
    } catch (const std::exception&) {
    }
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

}  // namespace

void save_checkpoint(const CheckpointContext& ctx, int64_t step, const std::vector<TrainableParameter>& trainable,
                     const std::vector<std::pair<std::string, at::Tensor>>& optimizer_state) {
  at::NoGradGuard no_grad;
  const fs::path final_dir = fs::path(ctx.output_dir) / ("checkpoint-" + std::to_string(step));
  const fs::path tmp = fs::path(ctx.output_dir) / (".tmp-checkpoint-" + std::to_string(step));
  if (ctx.rank == 0) {
    fs::remove_all(tmp);
    fs::create_directories(tmp);
  }
  ctx.barrier();
  const bool replicated = ctx.zero_stage == 0;
  if (ctx.rank == 0) {
    std::vector<std::pair<std::string, at::Tensor>> weights;
    for (const auto& p : trainable) weights.emplace_back(p.name, p.tensor.detach());
    write_safetensors((tmp / "model.safetensors").string(), weights);
  }
  if (!replicated || ctx.rank == 0) {
    std::vector<std::pair<std::string, at::Tensor>> state = optimizer_state;
    state.emplace_back("rng.cpu", at::detail::getDefaultCPUGenerator().get_state());
    if (!ctx.device.is_cpu()) state.emplace_back("rng.device", at::globalContext().defaultGenerator(ctx.device).get_state());
    write_safetensors((tmp / ("optimizer-rank" + std::to_string(ctx.rank) + ".safetensors")).string(), state);
  }
  ctx.barrier();
  if (ctx.rank == 0) {
    nlohmann::json state = {{"global_step", step}, {"world_size", ctx.world_size}, {"zero_stage", ctx.zero_stage},
                            {"finetuning_type", ctx.finetuning_type}};
    {
      std::ofstream out(tmp / "trainer_state.json");
      out << state.dump(2) << "\n";
      out.flush();
      PDSD_CHECK(out.good(), "cannot write ", (tmp / "trainer_state.json").string());
    }
    fs::remove_all(final_dir);
    fs::rename(tmp, final_dir);  // publishes the whole checkpoint at once
    std::ofstream(fs::path(ctx.output_dir) / "latest") << final_dir.filename().string() << "\n";
    if (ctx.save_total_limit > 0) {
      auto steps = checkpoint_steps(ctx.output_dir);
      for (size_t i = 0; i + static_cast<size_t>(ctx.save_total_limit) < steps.size(); ++i) {
        fs::remove_all(fs::path(ctx.output_dir) / ("checkpoint-" + std::to_string(steps[i])));
      }
    }
    log::info("saved ", final_dir.string());
  }
  ctx.barrier();
}

std::string resolve_checkpoint(const std::string& output_dir, const std::string& resume) {
  if (resume.empty() || resume == "false") return "";
  if (resume == "auto" || resume == "true") {
    auto steps = checkpoint_steps(output_dir);
    return steps.empty() ? "" : (fs::path(output_dir) / ("checkpoint-" + std::to_string(steps.back()))).string();
  }
  const bool numeric = std::all_of(resume.begin(), resume.end(), ::isdigit);
  const fs::path dir = numeric ? fs::path(output_dir) / ("checkpoint-" + resume) : fs::path(resume);
  if (!fs::exists(dir / "trainer_state.json")) {
    throw InputError(str("resume_from_checkpoint: '", dir.string(), "' is not a complete checkpoint (no trainer_state.json)"));
  }
  return dir.string();
}

int64_t load_checkpoint(const CheckpointContext& ctx, const std::string& dir, const std::vector<TrainableParameter>& trainable,
                        const std::vector<std::pair<std::string, at::Tensor>>& optimizer_state) {
  at::NoGradGuard no_grad;
  nlohmann::json state;
  {
    std::ifstream in(fs::path(dir) / "trainer_state.json");
    state = nlohmann::json::parse(in);
  }
  const int64_t world = state.value("world_size", int64_t{-1}), stage = state.value("zero_stage", int64_t{-1});
  if (world != ctx.world_size || stage != ctx.zero_stage || state.value("finetuning_type", "") != ctx.finetuning_type) {
    throw InputError(str(dir, ": saved by ", world, " ranks with zero_stage ", stage, " (", state.value("finetuning_type", ""),
                         "); this run has ", ctx.world_size, " ranks with zero_stage ", ctx.zero_stage, " (",
                         ctx.finetuning_type, "): resuming at another world size or stage is not built yet"));
  }
  auto weights = read_tensors((fs::path(dir) / "model.safetensors").string());
  for (const auto& p : trainable) {
    auto it = weights.find(p.name);
    if (it == weights.end()) throw InputError(str(dir, "/model.safetensors: tensor '", p.name, "' is missing"));
    p.tensor.detach().copy_(it->second.view_as(p.tensor));
  }
  const int file_rank = ctx.zero_stage == 0 ? 0 : ctx.rank;
  auto saved = read_tensors((fs::path(dir) / ("optimizer-rank" + std::to_string(file_rank) + ".safetensors")).string());
  for (const auto& [name, t] : optimizer_state) {
    auto it = saved.find(name);
    if (it == saved.end()) throw InputError(str(dir, ": optimizer state '", name, "' is missing"));
    t.copy_(it->second.view_as(t));
  }
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  gen.set_state(saved.at("rng.cpu"));
  if (!ctx.device.is_cpu() && saved.count("rng.device")) {
    at::Generator device_gen = at::globalContext().defaultGenerator(ctx.device);
    device_gen.set_state(saved.at("rng.device"));
  }
  return state.at("global_step").get<int64_t>();
}

}  // namespace pdsd
