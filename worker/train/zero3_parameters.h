// ZeRO-3: parameters sharded at rest. Every rank keeps 1/N of each weight (in the compute dtype) and,
// for what trains, 1/N of the fp32 master weights, gradients and AdamW state; nothing is ever whole
// on a rank except the one unit in use.
//
// Units: each decoder layer is one; the embeddings, final norm and lm_head form the "outer" unit.
// A layer is gathered (all-gather of its flat shard) just before it runs — the next two are already
// being gathered meanwhile (prefetch) — and freed right after (except at the turns: the last layer
// stays whole from forward into backward, layer 0 from backward into the next forward; and, within a
// budget the job sets, any layer until its weights change, see Zero3Options::keep_gathered_bytes); in
// backward it is gathered again, and either recomputed from those weights (gradient checkpointing)
// or, without checkpointing, gathered back into the very memory autograd's saved weights view,
// which was given back to the allocator between the two (as FSDP frees and refills its flat
// parameter); its gradients are reduce-scattered into this rank's fp32 gradient shard, so full
// gradients never pile up either. That reduce-scatter runs while backward goes on to the layers
// below: at most two layers' flat gradients are in flight, and all are summed in before the outer
// unit's gradients are reduced at the end of the step. The outer unit is gathered for the whole step (the embedding
// and the tied lm_head are used at both ends of the model) and freed after backward; a frozen one
// (LoRA, freeze) stays whole across steps within the keep budget.
// The optimizer step touches only shards: clip by the global norm (an all-reduce of squared norms),
// fused AdamW on the fp32 master shard, cast into the compute shard. No all-gather after the step.
//
//   Zero3Parameters z(model, weights, trains, comm, options);  // model's layer weights become empty
//   model.set_layer_runner(z.layer_runner(), [&z](int64_t layer) { return z.layer_trains(layer); });
//   trainer options: before_forward = z.gather_outer, after_forward = z.release_outer, sharded_step = z.step
//
// LoRA composes: the frozen base is sharded as above; the adapters are small and stay whole, their
// gradients summed by the caller's data-parallel step (worker/train/sharded_adamw.h).
#pragma once

#include <ATen/ATen.h>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "worker/model/causal_lm.h"
#include "worker/model/checkpointed_layer.h"
#include "worker/train/adamw.h"
#include "worker/train/gather_slots.h"
#include "worker/train/sharded_adamw.h"

namespace pdsd {

struct Zero3Options {
  at::ScalarType compute_dtype = at::kFloat;
  at::Device device = at::kCPU;
  AdamWOptions adam;
  // Precision of the gradient reduce-scatter (job key communication_data_type); unset: the
  // gradients' own (a layer's are in the compute dtype, the outer unit's in fp32).
  std::optional<at::ScalarType> reduce_dtype;
  // Job key zero3_gather_engine copy: the layers' shards and gathered layers live in the backend's
  // gather memory (ShardComm::gather_memory; a few fixed slots, gather_slots.h), where NCCL runs
  // their all-gathers on the copy engines, leaving the SMs to the GEMMs they overlap.
  bool copy_engine_gathers = false;
  // Job key zero3_keep_gathered_mb: gathered layers stay whole between their runs while all those
  // kept fit in this many bytes per rank. A frozen layer (the LoRA base) is then gathered once for
  // the whole job, a trainable one once per optimizer step instead of twice per micro-batch: what a
  // small model, whose step is bound by the host's cost per collective, needs. A frozen outer unit
  // (embeddings, lm_head) is kept from one step to the next on the same terms. 0: only the turns.
  // (The job key defaults to 2048 MiB, see common/job_config.h; 0 here for callers that choose.)
  int64_t keep_gathered_bytes = 0;
  // Job key gradient_checkpointing. On: every layer is recomputed in backward from weights gathered
  // again. Off: every layer runs once and autograd keeps its activations, as without ZeRO-3 (one
  // forward fewer per layer, for the activations' memory); a layer not kept whole has its memory
  // emptied after its forward and refilled before its backward. A trainable layer's gradient is then
  // reduce-scattered once autograd has accumulated it (a hook).
  bool gradient_checkpointing = true;
  // Every layer whole, always, in memory of its own that never moves (job key cuda_graphs under
  // ZeRO-3: a CUDA graph reads its weights at the addresses it was captured with). Each layer is
  // gathered once at the start; a frozen one never again, a trainable one again after every optimizer
  // step, in place (all of them issued at once after the update, each waited for before its layer's
  // first run: wait_for_layer). What stays sharded: the fp32 masters, the AdamW state and the
  // gradients (reduce-scattered as without it). The layers must fit keep_gathered_bytes, the budget
  // for whole layers; else the constructor throws, naming zero3_keep_gathered_mb. No gather slots.
  bool resident_layers = false;
};

// Job key zero3_gather_engine: whether the layers' all-gathers go to the copy engines. copy: yes;
// sm: no; auto: over NCCL (`over_nccl`, more than one rank) for layers of at least 128 MiB in the
// compute dtype. Measured on 2×H200: a 7B-shaped layer (466 MB gathered) ran 5–7% faster per GPU on
// the copy engines (LoRA) and 2% (full); a 0.5B-shaped one (29 MB) as fast or slower, the copy
// engines' fixed cost per all-gather weighing more than the SMs they free.
bool gathers_on_copy_engines(const std::string& engine, bool over_nccl, int64_t world_size, int64_t layer_bytes);
inline constexpr int64_t kCopyEngineLayerBytes = int64_t{128} << 20;

class Zero3Parameters final : public LayerWeights {
 public:
  // `weights`: every model weight by name, anywhere (memory-mapped file views): each rank copies out
  // only its shard. `trains(name)` says which weights train; a unit trains all or nothing.
  // `decays(name)`: weight decay applies. Replaces the model's unit weights with empty tensors.
  Zero3Parameters(CausalLM& model, const std::map<std::string, at::Tensor>& weights,
                  const std::function<bool(const std::string&)>& trains,
                  const std::function<bool(const std::string&)>& decays, ShardComm comm, Zero3Options options);
  ~Zero3Parameters() override;

  CausalLM::LayerRunner layer_runner();
  // Zero3Options::resident_layers: makes the layer's weights current (waits for its in-place gather
  // after an update) before a run that does not go through layer_runner (CUDA graphs). No-op otherwise.
  void wait_for_layer(int64_t layer);
  // Whether a layer's weights train (CausalLM::set_layer_runner's weights_train).
  bool layer_trains(int64_t layer) const;
  void gather_outer();   // before forward (training or eval)
  void release_outer();  // after the step's last backward (reduces its gradients first) or after eval

  // Clip by the global norm and update every trainable shard; returns the norm before clipping.
  // The norm is a one-element tensor on the device, not read back (the host does not wait).
  at::Tensor step(double lr, double max_grad_norm);

  bool trains_anything() const;
  // Bytes of one gathered layer (the widest; all are equal in the models served) in the compute dtype.
  int64_t gathered_layer_bytes() const;
  // The keep budget at work (Zero3Options::keep_gathered_bytes): the most layers kept whole at once
  // (trainable ones are let go at every step) and the most bytes kept (a frozen outer unit kept
  // included), and the training runs of layers that were not recomputed (without checkpointing).
  int64_t most_layers_kept() const { return most_layers_kept_; }
  int64_t most_kept_bytes() const { return most_kept_bytes_; }
  int64_t runs_without_recompute() const { return runs_without_recompute_; }
  // Bytes of whole layers held now: in use, prefetched, kept, or under autograd's saved weights.
  int64_t layer_bytes_held() const;
  // Gather slots held now (copy-engine gathers; 0 without slots).
  int64_t gather_slots_in_use() const { return slots_ ? slots_->in_use() : 0; }

  int64_t parameter_bytes() const;  // this rank's weights at rest: compute shards + fp32 master shards
  int64_t state_bytes() const;      // AdamW exp_avg + exp_avg_sq shards
  // For checkpoints (worker/train/checkpoint_shards.h): the trainable weights as meta tensors (names
  // and shapes, in unit order: the flat layout a checkpoint records), and this rank's pieces of them
  // as "<kind>@<offset in that layout>" views — "param" (the fp32 masters), "exp_avg", "exp_avg_sq" —
  // plus "step@<parameter index>" counters.
  std::vector<TrainableParameter> checkpoint_layout() const;
  std::vector<std::pair<std::string, at::Tensor>> state_tensors() const;
  // After the master shards were overwritten (resume): refresh the compute shards from them.
  void masters_changed();
  // Every weight whole, on the CPU (fp32 for trainable ones, else the compute dtype; or all rounded
  // to `dtype`, the export's, when given), for export. Every rank must call it (it all-gathers unit by
  // unit); only where `keep` is true (the rank that writes the export) are the CPU copies made and
  // returned: the others return nothing. Layers kept whole are let go first (they would be gathered
  // again, and kept again, if training went on).
  std::map<std::string, at::Tensor> gather_full_on_cpu(bool keep, std::optional<at::ScalarType> dtype = std::nullopt);

  struct Unit;

  // LayerWeights: gather a layer (prefetching the ones that run next), then free it, first
  // reduce-scattering its gradients when it trains and backward has run.
  void acquire(int64_t layer, bool for_backward) override;
  void release(int64_t layer, bool after_backward) override;

 private:
  // Without gradient checkpointing (see layer_runner in the .cpp): a layer's one training run, the
  // refill of its memory before its backward (prefetching the layers below), and the memory let go
  // after it.
  at::Tensor run_once(int64_t layer, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                      const AttentionLayout& attention);
  void before_backward(int64_t layer);
  void let_go_saved(Unit& unit);
  void gather(Unit& unit, bool as_leaves);
  // Starts gathering a layer ahead of its use (no-op when it is gathered or already on its way):
  // forward prefetches the next layers, backward the previous ones, so every rank issues the same
  // all-gathers in the same order and at most 1 + kPrefetchLayers layers are whole at a time.
  void prefetch_layer(int64_t layer);
  // A layer's compute shard gathered whole: the prefetched buffer once its all-gather is done, else
  // gathered now.
  at::Tensor gathered_shard(Unit& unit);
  static constexpr int64_t kPrefetchLayers = 2;
  void release(Unit& unit);
  // acquire(), with the weights as autograd leaves (a flat leaf, for a layer) or not.
  void take(int64_t layer, bool for_backward, bool as_leaves);
  void reduce_gradients(Unit& unit);
  void reduce_flat_gradient(Unit& unit, const at::Tensor& flat_leaf);
  struct ReduceWhenAccumulated;
  struct Reduction {
    Unit* unit;
    at::Tensor flat, reduced;  // the flat gradient (kept alive until reduced) and this rank's part
    dist::PendingCollective pending;
  };
  void issue_reduction(Reduction r);
  // Sums finished reduce-scatters into their units' gradient shards, oldest first, until at most
  // `keep` are still in flight.
  void complete_reductions(size_t keep);

  CausalLM& model_;
  ShardComm comm_;
  Zero3Options options_;
  // A gathered layer's buffer: a free slot (copy_engine_gathers), else fresh memory.
  at::Tensor gather_buffer(const Unit& unit);
  // At most 1 + kPrefetchLayers layers are whole in slots at a time (one in use or kept at a turn,
  // the prefetched ones), and none stays in a slot across kGatherSlots later takes (a layer kept at a
  // turn is used or dropped at the next pass's start; one kept under the budget leaves its slot when
  // gathered), so the slot due is always released (gather_slots.h).
  static constexpr int64_t kGatherSlots = 2 + kPrefetchLayers;

  std::vector<std::unique_ptr<Unit>> units_;  // [0] outer, [1 + i] layer i
  std::deque<Reduction> reducing_;
  std::optional<GatherSlots> slots_;
  bool backward_follows_ = false;  // the layer now running has a backward to come
  // The lowest layer of the last forward that has a backward to come: with a frozen embedding the
  // layers below the first that trains have none (CausalLM::first_trained_layer), and backward
  // prefetches nothing below it.
  int64_t lowest_backward_layer_ = 0;
  void prefetch_for_backward(int64_t layer);
  int64_t kept_bytes_ = 0;         // units kept whole under options_.keep_gathered_bytes
  int64_t layers_kept_ = 0, most_layers_kept_ = 0, most_kept_bytes_ = 0;
  int64_t runs_without_recompute_ = 0;
  // Zero3Options::resident_layers: every layer gathered for good (constructor), and a trainable one
  // gathered again into the same memory after an update.
  void make_resident();
  void refresh_resident(Unit& unit);
  bool resident(const Unit& unit) const { return options_.resident_layers && &unit != units_[0].get(); }
  bool keepable(const Unit& unit) const;  // kept, or would be at its next gather
  static int64_t gathered_bytes(const Unit& unit);  // the unit whole, in the compute dtype
  void keep(Unit& unit);  // kept whole from now, counted in the budget (see release)
  void drop_kept(Unit& unit);
};

}  // namespace pdsd
