#include "worker/train/checkpoint_shards.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <filesystem>

#include "common/error.h"
#include "worker/safetensors_file.h"

namespace fs = std::filesystem;

namespace pdsd {

FlatLayout FlatLayout::of(const std::vector<TrainableParameter>& trainable) {
  FlatLayout l;
  for (const auto& p : trainable) {
    l.params.push_back({p.name, p.tensor.sizes().vec(), l.total, p.tensor.numel()});
    l.total += p.tensor.numel();
  }
  return l;
}

FlatLayout FlatLayout::from_json(const nlohmann::json& j) {
  FlatLayout l;
  for (const auto& p : j.at("params")) {
    Param q{p.at("name").get<std::string>(), p.at("shape").get<std::vector<int64_t>>(), p.at("offset").get<int64_t>(), 1};
    for (int64_t d : q.shape) q.numel *= d;
    l.params.push_back(std::move(q));
  }
  l.total = j.at("total").get<int64_t>();
  return l;
}

nlohmann::json FlatLayout::to_json() const {
  nlohmann::json ps = nlohmann::json::array();
  for (const auto& p : params) ps.push_back({{"name", p.name}, {"shape", p.shape}, {"offset", p.offset}});
  return {{"total", total}, {"dtype", "float32"}, {"params", ps}};
}

size_t FlatLayout::param_at(int64_t offset) const {
  auto it = std::upper_bound(params.begin(), params.end(), offset,
                             [](int64_t v, const Param& p) { return v < p.offset; });
  PDSD_CHECK(it != params.begin() && offset < total, "flat offset ", offset, " is outside the ", total, " trainable elements");
  return static_cast<size_t>(it - params.begin() - 1);
}

const FlatLayout::Param* FlatLayout::find(const std::string& name) const {
  for (const auto& p : params) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

std::vector<StateSegment> parameter_segments(const FlatLayout& layout, const std::vector<TrainableParameter>& trainable) {
  std::vector<StateSegment> out;
  for (size_t i = 0; i < trainable.size(); ++i) {
    // Meta tensors stand for weights no rank holds whole (ZeRO-3): their "param" pieces are in the
    // optimizer files, as the master shards.
    if (trainable[i].tensor.is_meta()) continue;
    out.push_back({"param", layout.params[i].offset, trainable[i].tensor.detach().view({-1})});
  }
  return out;
}

std::vector<StateSegment> optimizer_segments(const FlatLayout& layout,
                                             const std::vector<std::pair<std::string, at::Tensor>>& state) {
  std::vector<StateSegment> out;
  // ZeRO names its pieces itself ("<kind>@<global begin>"; "step@<parameter index>"): its shards are
  // per bucket (ZeRO-1/2, sharded_adamw.h) or per layer (ZeRO-3, zero3_parameters.h).
  if (!state.empty() && state.front().first.find('@') != std::string::npos) {
    for (const auto& [name, t] : state) {
      const size_t at = name.find('@');
      PDSD_CHECK(at != std::string::npos, "optimizer state '", name, "' is not a <kind>@<offset> piece");
      out.push_back({name.substr(0, at), std::stoll(name.substr(at + 1)), t.view({-1})});
    }
    return out;
  }
  // Replicated AdamW: "<kind>.<i>", state per parameter, in trainable order.
  for (const auto& [name, t] : state) {
    const size_t dot = name.rfind('.');
    PDSD_CHECK(dot != std::string::npos, "optimizer state '", name, "' has no index");
    const std::string kind = name.substr(0, dot);
    const int64_t i = std::stoll(name.substr(dot + 1));
    PDSD_CHECK(i >= 0 && static_cast<size_t>(i) < layout.params.size(), "optimizer state '", name, "' has no parameter");
    out.push_back({kind, kind == "step" ? i : layout.params[i].offset, t.view({-1})});
  }
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> pieces_for_file(const std::vector<StateSegment>& segments) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& s : segments) out.emplace_back(s.kind + "@" + std::to_string(s.begin), s.view);
  return out;
}

SavedState::SavedState(const std::string& dir, FlatLayout saved_layout, const std::vector<std::string>& named_param_files,
                       const std::vector<std::string>& piece_files)
    : dir_(dir), layout_(std::move(saved_layout)) {
  auto open = [&](const std::string& name) -> SafetensorsFile& {
    files_.push_back(std::make_unique<SafetensorsFile>((fs::path(dir) / name).string()));
    return *files_.back();
  };
  auto check_f32 = [](const SafetensorsFile& f, const SafetensorsEntry& e) {
    if (e.dtype != "F32") throw InputError(pdsd::str(f.path(), ": tensor '", e.name, "' is ", e.dtype, ", checkpoints hold F32"));
  };
  for (const auto& name : named_param_files) {
    SafetensorsFile& f = open(name);
    for (const auto& e : f.entries()) {
      const FlatLayout::Param* p = layout_.find(e.name);
      if (p == nullptr) throw InputError(pdsd::str(f.path(), ": tensor '", e.name, "' is not in trainer_state.json's layout"));
      check_f32(f, e);
      PDSD_CHECK((e.end - e.begin) / 4 == static_cast<uint64_t>(p->numel), f.path(), ": tensor '", e.name, "' has ",
                 (e.end - e.begin) / 4, " elements, the layout says ", p->numel);
      pieces_["param"].push_back({p->offset, p->offset + p->numel, reinterpret_cast<const float*>(f.data(e)),
                                  name + ": " + e.name});
    }
  }
  for (const auto& name : piece_files) {
    SafetensorsFile& f = open(name);
    for (const auto& e : f.entries()) {
      const size_t at = e.name.find('@');
      if (at == std::string::npos) throw InputError(pdsd::str(f.path(), ": tensor '", e.name, "' is not a <kind>@<offset> piece"));
      check_f32(f, e);
      const int64_t begin = std::stoll(e.name.substr(at + 1)), n = static_cast<int64_t>((e.end - e.begin) / 4);
      pieces_[e.name.substr(0, at)].push_back({begin, begin + n, reinterpret_cast<const float*>(f.data(e)),
                                               name + ": " + e.name});
    }
  }
  for (auto& [kind, list] : pieces_) {
    std::sort(list.begin(), list.end(), [](const Piece& a, const Piece& b) { return a.begin < b.begin; });
  }
}

SavedState::~SavedState() = default;

void SavedState::copy_range(const std::string& kind, int64_t saved_begin, int64_t n, const at::Tensor& out,
                            const std::string& what) const {
  auto it = pieces_.find(kind);
  int64_t covered = 0;
  if (it != pieces_.end()) {
    const auto& list = it->second;
    const int64_t end = saved_begin + n;
    // The first piece that may overlap: the last one starting at or before saved_begin.
    auto p = std::upper_bound(list.begin(), list.end(), saved_begin, [](int64_t v, const Piece& q) { return v < q.begin; });
    if (p != list.begin()) --p;
    for (; p != list.end() && p->begin < end; ++p) {
      const int64_t lo = std::max(saved_begin, p->begin), hi = std::min(end, p->end);
      if (lo >= hi) continue;
      at::Tensor src = at::from_blob(const_cast<float*>(p->data + (lo - p->begin)), {hi - lo}, at::kFloat);
      out.narrow(0, lo - saved_begin, hi - lo).copy_(src);
      covered += hi - lo;
    }
  }
  if (covered != n) {
    throw InputError(pdsd::str(dir_, ": the checkpoint holds ", covered, " of the ", n, " saved ", kind, " elements of ", what,
                         " (a file is missing, or it was saved by another version of pdsd)"));
  }
}

void SavedState::read_into(const FlatLayout& current, const std::vector<StateSegment>& targets) const {
  at::NoGradGuard no_grad;
  for (const auto& t : targets) {
    const int64_t n = t.view.numel();
    if (t.kind == "step") {  // indexed by parameter: match each by name
      for (int64_t i = 0; i < n; ++i) {
        const auto& mine = current.params.at(static_cast<size_t>(t.begin + i));
        const FlatLayout::Param* saved = layout_.find(mine.name);
        if (saved == nullptr) throw InputError(pdsd::str(dir_, ": the checkpoint has no state for tensor '", mine.name, "'"));
        const int64_t index = saved - layout_.params.data();
        copy_range("step", index, 1, t.view.narrow(0, i, 1), "'" + mine.name + "'");
      }
      continue;
    }
    // A flat segment may span parameters: copy each parameter's part from where that parameter was saved.
    int64_t pos = 0;
    while (pos < n) {
      const auto& mine = current.params[current.param_at(t.begin + pos)];
      const FlatLayout::Param* saved = layout_.find(mine.name);
      if (saved == nullptr) throw InputError(pdsd::str(dir_, ": the checkpoint has no tensor '", mine.name, "'"));
      if (saved->shape != mine.shape) {
        throw InputError(pdsd::str(dir_, ": tensor '", mine.name, "' was saved with shape ", at::IntArrayRef(saved->shape),
                             ", this run has ", at::IntArrayRef(mine.shape)));
      }
      const int64_t within = t.begin + pos - mine.offset;
      const int64_t len = std::min(n - pos, mine.numel - within);
      copy_range(t.kind, saved->offset + within, len, t.view.narrow(0, pos, len), "'" + mine.name + "'");
      pos += len;
    }
  }
}

}  // namespace pdsd
