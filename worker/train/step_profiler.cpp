#include "worker/train/step_profiler.h"

#include <torch/csrc/autograd/profiler_kineto.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <vector>

#include "common/error.h"
#include "common/log.h"

namespace pdsd {

namespace fs = std::filesystem;
namespace prof = torch::profiler::impl;

std::optional<StepProfiler> StepProfiler::from_env(const std::string& output_dir, int rank, bool on_gpu) {
  const char* value = std::getenv("PDSD_PROFILE");
  if (value == nullptr || *value == '\0') return std::nullopt;
  std::smatch m;
  const std::string text = value;
  static const std::regex form(R"((\d+):(\d+))");
  if (!std::regex_match(text, m, form) || std::stoll(m[1]) < 1 || std::stoll(m[2]) < 1) {
    throw InputError(str("PDSD_PROFILE='", text, "': expected <first step>:<steps>, e.g. 5:3"));
  }
  return StepProfiler(output_dir, rank, on_gpu, std::stoll(m[1]), std::stoll(m[2]));
}

namespace {

struct Total {
  int64_t calls = 0;
  uint64_t ns = 0;
};

// The names that took the most time, one line each: total ms, share, calls, name.
void write_table(std::ofstream& out, const char* title, const std::map<std::string, Total>& totals, size_t rows) {
  std::vector<std::pair<std::string, Total>> sorted(totals.begin(), totals.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second.ns > b.second.ns; });
  uint64_t all = 0;
  for (const auto& [name, t] : sorted) all += t.ns;
  out << title << " (" << static_cast<double>(all) / 1e6 << " ms in all)\n";
  char line[64];
  for (size_t i = 0; i < std::min(rows, sorted.size()); ++i) {
    const auto& [name, t] = sorted[i];
    std::snprintf(line, sizeof line, "%10.2f ms %6.1f%% %8lld  ", static_cast<double>(t.ns) / 1e6,
                  all > 0 ? 100.0 * static_cast<double>(t.ns) / static_cast<double>(all) : 0.0, static_cast<long long>(t.calls));
    out << line << name.substr(0, 160) << "\n";
  }
  out << "\n";
}

}  // namespace

void StepProfiler::before_step(int64_t step) {
  if (step != first_ || running_) return;
  std::set<prof::ActivityType> activities = {prof::ActivityType::CPU};
  if (on_gpu_) activities.insert(prof::ActivityType::CUDA);
  const prof::ProfilerConfig config(prof::ProfilerState::KINETO, /*report_input_shapes=*/false);
  torch::autograd::profiler::prepareProfiler(config, activities);
  torch::autograd::profiler::enableProfiler(config, activities);
  running_ = true;
  if (rank_ == 0) log::info("PDSD_PROFILE: recording steps ", first_, "..", last(), " on every rank");
}

void StepProfiler::after_step(int64_t step) {
  if (!running_ || step < last()) return;
  running_ = false;
  std::unique_ptr<torch::autograd::profiler::ProfilerResult> result = torch::autograd::profiler::disableProfiler();
  fs::create_directories(output_dir_);
  const std::string base = (fs::path(output_dir_) / ("profile-rank" + std::to_string(rank_))).string();
  result->save(base + ".json");
  // Kernels (device activity) and operators (CPU, inclusive of what they call) by name.
  std::map<std::string, Total> kernels, operators;
  for (const auto& e : result->events()) {
    auto& totals = e.deviceType() == c10::DeviceType::CPU ? operators : kernels;
    Total& t = totals[e.name()];
    ++t.calls;
    t.ns += e.durationNs();
  }
  std::ofstream out(base + ".txt");
  out << "steps " << first_ << ".." << last() << " of rank " << rank_ << "\n\n";
  if (!kernels.empty()) write_table(out, "device activity by name (kernels, copies)", kernels, 40);
  write_table(out, "CPU operators by name (inclusive time: nested operators count in their callers too)", operators, 40);
  PDSD_CHECK(out.good(), "cannot write ", base, ".txt");
  if (rank_ == 0) log::info("PDSD_PROFILE: wrote ", base, ".json and ", base, ".txt");
}

}  // namespace pdsd
