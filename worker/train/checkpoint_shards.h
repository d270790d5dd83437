// Checkpoint state as pieces of flat buffers with global offsets, so that a checkpoint saved at one
// world size and ZeRO stage loads at any other: resharding is only re-slicing.
//
// The trainable parameters, in order, define one flat fp32 buffer (FlatLayout: each parameter's name,
// shape and offset; `total` elements). Every kind of state is a buffer over that index space: "param"
// (the weights), "exp_avg", "exp_avg_sq" (AdamW's moments); "step" (AdamW's per-parameter counters)
// is indexed by parameter number instead. A rank holds segments of them — replicated AdamW holds
// every parameter's state, a ZeRO rank its chunk of each bucket (ZeRO-1/2) or layer (ZeRO-3) — and
// saves each segment as one tensor named for its kind and global offset ("exp_avg@1024"). Loading asks, for each segment this rank needs in
// *its* layout, which saved pieces cover it (matched by parameter name, so the parameter order may
// differ too) and copies the overlaps; an element nobody saved is an error naming the tensor.
//
//   FlatLayout layout = FlatLayout::of(trainable);
//   auto mine = optimizer_segments(layout, trainer.optimizer_state());   // save or load targets
//   SavedState saved(dir, FlatLayout::from_json(state["layout"]), {"model.safetensors", ...});
//   saved.read_into(layout, mine);
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "worker/train/trainer.h"

namespace pdsd {

class SafetensorsFile;

struct FlatLayout {
  struct Param {
    std::string name;
    std::vector<int64_t> shape;
    int64_t offset = 0;
    int64_t numel = 0;
  };
  std::vector<Param> params;
  int64_t total = 0;

  static FlatLayout of(const std::vector<TrainableParameter>& trainable);
  static FlatLayout from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
  // Index of the parameter holding flat element `offset`.
  size_t param_at(int64_t offset) const;
  const Param* find(const std::string& name) const;
};

struct StateSegment {
  std::string kind;  // "param", "exp_avg", "exp_avg_sq", "step"
  int64_t begin = 0; // global offset of view[0] in that kind's buffer
  at::Tensor view;   // 1-D, contiguous: writing into it restores the state
};

// The trainable weights, one segment per parameter.
std::vector<StateSegment> parameter_segments(const FlatLayout& layout, const std::vector<TrainableParameter>& trainable);

// This rank's optimizer state as segments, from the trainer's named state tensors: replicated AdamW
// ("exp_avg.<i>", "exp_avg_sq.<i>", "step.<i>" per parameter i) or ZeRO's pieces, which name their
// kind and global offset themselves ("exp_avg@<begin>", "step@<parameter index>"; ZeRO's "param"
// pieces are its fp32 master weights).
std::vector<StateSegment> optimizer_segments(const FlatLayout& layout,
                                             const std::vector<std::pair<std::string, at::Tensor>>& state);

// Segments as the named tensors of one safetensors file: "<kind>@<begin>".
std::vector<std::pair<std::string, at::Tensor>> pieces_for_file(const std::vector<StateSegment>& segments);

// Every piece saved in a checkpoint's files. Files are memory-mapped; nothing is read until read_into.
class SavedState {
 public:
  // `named_param_files`: files of whole parameters by name (model.safetensors); `piece_files`: files
  // of "<kind>@<begin>" pieces (optimizer-rank<r>.safetensors).
  SavedState(const std::string& dir, FlatLayout saved_layout, const std::vector<std::string>& named_param_files,
             const std::vector<std::string>& piece_files);
  ~SavedState();

  const FlatLayout& layout() const { return layout_; }
  // Fills every target (defined in `current`'s layout) from the saved pieces; throws InputError naming
  // the parameter when the checkpoint lacks it, its shape differs, or some of its elements were never saved.
  void read_into(const FlatLayout& current, const std::vector<StateSegment>& targets) const;

 private:
  struct Piece {
    int64_t begin = 0, end = 0;  // global, in the saved layout
    const float* data = nullptr;
    std::string where;           // "file.safetensors: tensor" for messages
  };
  void copy_range(const std::string& kind, int64_t saved_begin, int64_t n, const at::Tensor& out,
                  const std::string& what) const;

  std::string dir_;
  FlatLayout layout_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::vector<Piece>> pieces_;  // by kind, sorted by begin
};

}  // namespace pdsd
