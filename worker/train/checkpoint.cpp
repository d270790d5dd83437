#include "worker/train/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <climits>
#include <functional>
#include <cstdlib>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>

#include "common/error.h"
#include "common/log.h"
#include "worker/export/safetensors_writer.h"
#include "worker/safetensors_file.h"
#include "worker/train/checkpoint_manifest.h"
#include "worker/train/checkpoint_shards.h"

namespace fs = std::filesystem;

namespace pdsd {

namespace {

std::string rank_file(const char* stem, int rank) { return pdsd::str(stem, rank, ".safetensors"); }

// PDSD_FAULT_INJECT for this process (see checkpoint.h); one byte budget over all saves of the run.
InjectedWriteFault* injected_fault(int rank, int64_t step) {
  struct Plan {
    InjectedWriteFault fault;
    int64_t crash_step = -1;  // crash: at this step's save (0: the first save)
  };
  static Plan plan = [rank] {
    Plan p;
    const char* env = std::getenv("PDSD_FAULT_INJECT");
    const std::string spec = env != nullptr ? env : "";
    std::smatch m;
    if (std::regex_search(spec, m, std::regex("save_enospc_after_bytes:(\\d+)"))) p.fault.bytes_left = std::stoll(m[1]);
    if (std::regex_search(spec, m, std::regex("crash_rank(\\d+)_during_save(?::(\\d+))?")) && std::stoi(m[1]) == rank) {
      p.crash_step = m[2].matched ? std::stoll(m[2]) : 0;
    }
    if (p.fault.bytes_left >= 0 || p.crash_step >= 0) {
      log::warn("PDSD_FAULT_INJECT=", spec, ": checkpoint saves will fail on purpose");
    }
    return p;
  }();
  if (plan.crash_step >= 0 && (plan.crash_step == 0 || plan.crash_step == step)) {
    plan.fault = {.bytes_left = 64, .crash = true};
  }
  return &plan.fault;
}

std::vector<int64_t> published_steps(const std::string& output_dir) {
  std::vector<int64_t> steps;
  if (!fs::is_directory(output_dir)) return steps;
  static const std::regex name("checkpoint-(\\d+)");
  for (const auto& entry : fs::directory_iterator(output_dir)) {
    std::smatch m;
    const std::string file = entry.path().filename().string();
    if (entry.is_directory() && std::regex_match(file, m, name)) steps.push_back(std::stoll(m[1]));
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

fs::path checkpoint_dir(const std::string& output_dir, int64_t step) {
  return fs::path(output_dir) / ("checkpoint-" + std::to_string(step));
}

// Everything rank r writes into the temporary folder, each file's size and CRC-32 as written.
std::vector<FileDigest> write_rank_files(const CheckpointContext& ctx, int64_t step, const fs::path& tmp,
                                         const std::vector<TrainableParameter>& trainable,
                                         const std::vector<std::pair<std::string, at::Tensor>>& optimizer_state) {
  InjectedWriteFault* fault = injected_fault(ctx.rank, step);
  std::vector<FileDigest> files;
  // Every file first, then every fsync (safetensors_writer.h says why).
  auto write = [&](const std::string& name, const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
    WrittenFile w = write_safetensors_unsynced((tmp / name).string(), tensors, {{"format", "pt"}}, fault);
    files.push_back({name, w.bytes, w.crc32});
  };
  const FlatLayout layout = FlatLayout::of(trainable);
  std::vector<StateSegment> optimizer = optimizer_segments(layout, optimizer_state);
  // A ZeRO shard's master weights equal the (all-gathered) parameters: the weights file has them.
  // That equality also proves the shard layout is the one optimizer_segments assumes.
  std::vector<StateSegment> saved;
  for (auto& s : optimizer) {
    // (A ZeRO "param" piece lies within one parameter; a meta one is saved only as shards.)
    const bool whole_elsewhere =
        s.kind == "param" && s.view.numel() > 0 && !trainable[layout.param_at(s.begin)].tensor.is_meta();
    if (!whole_elsewhere) {  // optimizer state, or master shards of weights kept in a lower precision or sharded (ZeRO-3)
      saved.push_back(s);
      continue;
    }
    for (int64_t pos = 0; pos < s.view.numel();) {  // parameter by parameter: no full-size copy
      const auto& p = layout.params[layout.param_at(s.begin + pos)];
      const int64_t within = s.begin + pos - p.offset, n = std::min(s.view.numel() - pos, p.numel - within);
      const at::Tensor param = trainable[static_cast<size_t>(&p - layout.params.data())].tensor.detach().reshape({-1});
      PDSD_CHECK(at::equal(param.narrow(0, within, n), s.view.narrow(0, pos, n)), "rank ", ctx.rank,
                 ": the ZeRO master shard differs from parameter '", p.name,
                 "': the shard layout is not the one checkpoints assume (worker/train/checkpoint_shards.h)");
      pos += n;
    }
  }
  if (ctx.rank == 0) {
    std::vector<std::pair<std::string, at::Tensor>> weights;
    for (const auto& p : trainable) {
      if (!p.tensor.is_meta()) weights.emplace_back(p.name, p.tensor.detach());
    }
    write("model.safetensors", weights);
  }
  if (ctx.zero_stage > 0 || ctx.rank == 0) write(rank_file("optimizer-rank", ctx.rank), pieces_for_file(saved));
  std::vector<std::pair<std::string, at::Tensor>> rng = {{"cpu", at::detail::getDefaultCPUGenerator().get_state()}};
  if (!ctx.device.is_cpu()) rng.emplace_back("device", at::globalContext().defaultGenerator(ctx.device).get_state());
  write(rank_file("rng_state_", ctx.rank), rng);
  for (const auto& f : files) publish_written_file((tmp / f.name).string());
  return files;
}

nlohmann::json trainer_state(const CheckpointContext& ctx, int64_t step, const std::vector<TrainableParameter>& trainable) {
  std::vector<std::string> optimizer_files;
  for (int r = 0; r < (ctx.zero_stage > 0 ? ctx.world_size : 1); ++r) optimizer_files.push_back(rank_file("optimizer-rank", r));
  const std::string settings = ctx.settings.dump();
  Crc32 hash;
  hash.update(settings.data(), settings.size());
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", hash.value());
  return {{"format", kCheckpointFormat},
          {"global_step", step},
          {"epoch", ctx.steps_per_epoch > 0 ? static_cast<double>(step) / static_cast<double>(ctx.steps_per_epoch) : 0.0},
          // The batch plan is a pure function of (seed, epoch, step): the next step's batches are step's.
          {"data_position", {{"next_plan_step", step}, {"steps_per_epoch", ctx.steps_per_epoch}}},
          {"scheduler", ctx.scheduler},
          {"world_size", ctx.world_size},
          {"zero_stage", ctx.zero_stage},
          {"finetuning_type", ctx.finetuning_type},
          {"base_model", ctx.base_model},
          {"lora", ctx.lora},
          {"config_hash", pdsd::str("crc32:", hex)},
          {"config", ctx.settings},
          {"layout", FlatLayout::of(trainable).to_json()},
          {"weights_file", "model.safetensors"},
          {"optimizer_files", optimizer_files}};
}

void remove_quietly(const fs::path& dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace

SaveOutcome save_checkpoint(const CheckpointContext& ctx, int64_t step, const std::vector<TrainableParameter>& trainable,
                            const std::vector<std::pair<std::string, at::Tensor>>& optimizer_state) {
  at::NoGradGuard no_grad;
  const auto started = std::chrono::steady_clock::now();
  uint64_t total_bytes = 0;  // every rank's files, known to rank 0 when it publishes
  const fs::path final_dir = checkpoint_dir(ctx.output_dir, step);
  const fs::path tmp = fs::path(ctx.output_dir) / (".tmp-checkpoint-" + std::to_string(step));
  SaveOutcome out;
  // Each phase ends with one all-reduce of "did it fail here": every rank learns the same answer.
  auto phase = [&](const char* what, const std::function<void()>& body) {
    int64_t failed = 0;
    try {
      body();
    } catch (const std::exception& e) {
      out.error = e.what();
      failed = 1;
    }
    if (ctx.all_max(failed) == 0) return true;
    if (out.error.empty()) out.error = pdsd::str("another rank failed while ", what, " (see its log)");
    if (ctx.rank == 0) remove_quietly(tmp);
    return false;
  };
  const bool ok =
      phase("preparing the folder", [&] {
        if (ctx.rank != 0) return;
        // Folders of saves that never finished (a crash mid-save) go; they were never checkpoints.
        for (const auto& entry : fs::directory_iterator(ctx.output_dir)) {
          if (entry.path().filename().string().rfind(".tmp-checkpoint-", 0) == 0) remove_quietly(entry.path());
        }
        fs::create_directories(tmp);
      }) &&
      phase("writing its files", [&] { write_rank_digests(tmp.string(), ctx.rank, write_rank_files(ctx, step, tmp, trainable, optimizer_state)); }) &&
      phase("publishing", [&] {
        if (ctx.rank != 0) return;
        write_file_durably((tmp / "trainer_state.json").string(), trainer_state(ctx, step, trainable).dump(2) + "\n");
        std::vector<FileDigest> files = merge_rank_digests(tmp.string(), ctx.world_size);
        files.push_back(digest_file(tmp.string(), "trainer_state.json"));
        for (const auto& f : files) total_bytes += f.bytes;
        write_manifest(tmp.string(), files);
        if (fs::exists(final_dir)) fs::remove_all(final_dir);  // a stale one from an earlier run
        fs::rename(tmp, final_dir);                              // publishes the whole checkpoint at once
        fsync_dir(ctx.output_dir);
      });
  if (!ok) {
    log::error("checkpoint-", step, " was not saved: ", out.error, "; earlier checkpoints are intact and training goes on");
    return out;
  }
  out.saved = true;
  out.dir = final_dir.string();
  if (ctx.rank == 0) {
    try {  // conveniences: a failure here leaves a valid checkpoint, so it only warns
      const fs::path latest = fs::path(ctx.output_dir) / "latest";
      write_file_durably(latest.string() + ".tmp", final_dir.filename().string() + "\n");
      fs::rename(latest.string() + ".tmp", latest);
      if (ctx.save_total_limit > 0) {
        std::vector<int64_t> steps = published_steps(ctx.output_dir);
        for (size_t i = 0; i + static_cast<size_t>(ctx.save_total_limit) < steps.size(); ++i) {
          if (steps[i] != step) fs::remove_all(checkpoint_dir(ctx.output_dir, steps[i]));
        }
      }
    } catch (const std::exception& e) {
      log::warn("saved ", final_dir.string(), " but could not update `latest` or prune old checkpoints: ", e.what());
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    log::info("saved ", final_dir.string(), ": ", static_cast<double>(total_bytes) / 1e9, " GB from ", ctx.world_size,
              " rank(s) in ", seconds, " s (", static_cast<double>(total_bytes) / 1e9 / std::max(seconds, 1e-9), " GB/s)");
  }
  return out;
}

std::string choose_checkpoint(const CheckpointContext& ctx, const std::string& resume) {
  if (resume.empty() || resume == "false") return "";
  const bool named = !(resume == "auto" || resume == "true");
  const auto started = std::chrono::steady_clock::now();
  // Rank 0 lists the candidates, newest first (a named one is the only one), and the ranks walk them
  // together: each candidate's step is agreed first, then every rank checks the size of every file
  // and the CRC-32 of its byte-balanced share, so the job reads each byte once and in parallel.
  // Whatever fails on one rank (a file, the folder missing on its node, an I/O error) becomes that
  // rank's verdict, so every rank makes the same calls; the lowest rank with a complaint says it.
  constexpr int64_t kNotRankZero = -3, kCannotList = -2;
  std::vector<int64_t> steps;
  std::string list_error;
  if (ctx.rank == 0 && !named) {
    try {
      for (const auto& entry : fs::is_directory(ctx.output_dir) ? fs::directory_iterator(ctx.output_dir) : fs::directory_iterator()) {
        const std::string name = entry.path().filename().string();
        if (name.rfind(".tmp-checkpoint-", 0) == 0) {
          log::warn("ignoring ", entry.path().string(), ": a save that never finished (no manifest.json)");
        }
      }
      steps = published_steps(ctx.output_dir);
    } catch (const std::exception& e) {
      list_error = e.what();
    }
  }
  const int64_t count = named ? 1
                              : ctx.all_max(ctx.rank != 0 ? kNotRankZero
                                            : list_error.empty() ? static_cast<int64_t>(steps.size()) : kCannotList);
  if (count == kCannotList) {
    throw Error(pdsd::str("resume_from_checkpoint: rank 0 cannot list ", ctx.output_dir,
                          ctx.rank == 0 ? ": " + list_error : " (its log says why)"));
  }
  const bool numeric = std::all_of(resume.begin(), resume.end(), ::isdigit);
  for (int64_t i = 0; i < count; ++i) {
    std::string dir;
    if (named) {
      dir = (numeric ? checkpoint_dir(ctx.output_dir, std::stoll(resume)) : fs::path(resume)).string();
    } else {
      const int64_t step = ctx.all_max(ctx.rank == 0 ? steps[steps.size() - 1 - static_cast<size_t>(i)] : kNotRankZero);
      dir = checkpoint_dir(ctx.output_dir, step).string();
    }
    std::string why;
    try {
      why = fs::is_directory(dir) ? validate_checkpoint(dir, true, ctx.rank, ctx.world_size)
                                  : pdsd::str("'", dir, "' does not exist", ctx.world_size > 1 ? " on rank " + std::to_string(ctx.rank) + "'s node" : "");
    } catch (const std::exception& e) {
      why = pdsd::str(dir, ": ", e.what());
    }
    const int64_t first_bad =
        -ctx.all_max(why.empty() ? -static_cast<int64_t>(ctx.world_size) : -static_cast<int64_t>(ctx.rank));
    if (first_bad == ctx.world_size) {
      if (ctx.rank == 0) {
        log::info("validated ", dir, " (sizes and CRC-32 of every file, ", ctx.world_size, " rank(s) in parallel) in ",
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), " s");
      }
      return dir;
    }
    if (first_bad != ctx.rank) why = pdsd::str(dir, ": rank ", first_bad, " found it unusable (its log says why)");
    if (named) throw InputError(pdsd::str("resume_from_checkpoint: ", why));
    if (first_bad == ctx.rank) {
      log::warn("skipping ", dir, ": ", why, i + 1 < count ? "; falling back to the previous checkpoint" : "");
    }
  }
  if (ctx.rank == 0 && count > 0) log::warn("no valid checkpoint in ", ctx.output_dir, ": training starts from step 0");
  return "";
}

nlohmann::json read_trainer_state(const std::string& dir) {
  const fs::path path = fs::path(dir) / "trainer_state.json";
  std::ifstream in(path);
  if (!in) throw InputError(pdsd::str(path.string(), ": cannot open"));
  try {
    nlohmann::json j = nlohmann::json::parse(in);
    if (j.value("format", 0) != kCheckpointFormat) {
      throw InputError(pdsd::str(path.string(), ": checkpoint format ", j.value("format", 0), ", this pdsd reads format ",
                           kCheckpointFormat));
    }
    return j;
  } catch (const nlohmann::json::exception& e) {
    throw InputError(pdsd::str(path.string(), ": not valid JSON (", e.what(), ")"));
  }
}

namespace {
SavedState open_saved_state(const std::string& dir, const nlohmann::json& state) {
  return SavedState(dir, FlatLayout::from_json(state.at("layout")), {state.at("weights_file").get<std::string>()},
                    state.at("optimizer_files").get<std::vector<std::string>>());
}
}  // namespace

void load_checkpoint_weights(const std::string& dir, const std::vector<TrainableParameter>& trainable) {
  const nlohmann::json state = read_trainer_state(dir);
  // The optimizer files too: a ZeRO-3 checkpoint keeps its weights there, as master shards.
  SavedState saved = open_saved_state(dir, state);
  const FlatLayout current = FlatLayout::of(trainable);
  saved.read_into(current, parameter_segments(current, trainable));
}

int64_t load_checkpoint(const CheckpointContext& ctx, const std::string& dir, const std::vector<TrainableParameter>& trainable,
                        const std::vector<std::pair<std::string, at::Tensor>>& optimizer_state) {
  at::NoGradGuard no_grad;
  const nlohmann::json state = read_trainer_state(dir);
  const std::string saved_type = state.value("finetuning_type", "");
  if (saved_type != ctx.finetuning_type) {
    throw InputError(pdsd::str(dir, ": saved by a ", saved_type, " job; this job's finetuning_type is ", ctx.finetuning_type));
  }
  const int64_t world = state.at("world_size").get<int64_t>(), stage = state.at("zero_stage").get<int64_t>();
  if (ctx.rank == 0) {
    std::vector<std::string> differ;
    const nlohmann::json& saved = state.at("config");
    for (const auto& [key, value] : ctx.settings.items()) {
      if (!saved.contains(key) || saved[key] != value) {
        differ.push_back(pdsd::str(key, " ", saved.contains(key) ? saved[key].dump() : "(unset)", " -> ", value.dump()));
      }
    }
    if (!differ.empty()) {
      std::string list;
      for (const auto& d : differ) list += (list.empty() ? "" : ", ") + d;
      log::warn(dir, ": the settings that change the math differ from the saved ones (", state.value("config_hash", ""),
                "): ", list, "; the resumed run will not match an uninterrupted one");
    }
    if (world != ctx.world_size || stage != ctx.zero_stage) {
      log::info(dir, ": saved by ", world, " ranks with zero_stage ", stage, "; resharding for ", ctx.world_size,
                " ranks with zero_stage ", ctx.zero_stage);
    }
  }
  const auto started = std::chrono::steady_clock::now();
  SavedState saved = open_saved_state(dir, state);
  const FlatLayout current = FlatLayout::of(trainable);
  std::vector<StateSegment> targets = parameter_segments(current, trainable);
  for (auto& s : optimizer_segments(current, optimizer_state)) targets.push_back(std::move(s));
  saved.read_into(current, targets);
  uint64_t loaded_bytes = 0;
  for (const auto& t : targets) loaded_bytes += static_cast<uint64_t>(t.view.nbytes());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  log::info("rank ", ctx.rank, " loaded ", static_cast<double>(loaded_bytes) / 1e9, " GB of state from ", dir, " in ",
            seconds, " s (", static_cast<double>(loaded_bytes) / 1e9 / std::max(seconds, 1e-9), " GB/s)");
  // Random generators: this rank's own; at another world size, that of rank (r mod saved ranks).
  const std::string rng_name = rank_file("rng_state_", static_cast<int>(ctx.rank % std::max<int64_t>(world, 1)));
  SafetensorsFile rng((fs::path(dir) / rng_name).string());
  for (const auto& e : rng.entries()) {
    at::Tensor bytes = at::from_blob(const_cast<std::byte*>(rng.data(e)), e.shape, at::kByte).clone();
    if (e.name == "cpu") {
      at::Generator gen = at::detail::getDefaultCPUGenerator();
      gen.set_state(bytes);
    } else if (e.name == "device" && !ctx.device.is_cpu()) {
      at::Generator gen = at::globalContext().defaultGenerator(ctx.device);
      gen.set_state(bytes);
    }
  }
  return state.at("global_step").get<int64_t>();
}

}  // namespace pdsd
