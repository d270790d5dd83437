#include "worker/train/zero3_parameters.h"

#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>

#include "common/error.h"
#include "worker/model/checkpointed_layer.h"
#include "worker/train/flat_shard.h"
#include "worker/train/gradient_buckets.h"

namespace pdsd {

struct Zero3Parameters::Unit {
  std::string label;  // for errors: "layer 3", "outer (embeddings, final norm, lm_head)"
  std::vector<std::string> names;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<bool> decay;
  bool trains = false;
  std::optional<FlatShardLayout> layout;
  at::Tensor shard;                                // [shard] compute dtype: what is gathered
  at::Tensor master, exp_avg, exp_avg_sq, grad;    // [shard] fp32, when the unit trains
  std::vector<at::Tensor> steps;                   // AdamW step counter per piece
  at::Tensor full;                                 // [padded] while gathered
  std::vector<at::Tensor> leaves;                  // the weights handed to the model while gathered
  at::Tensor flat_leaf;                            // a layer in backward: `full` as the one leaf the weights view
  bool gathered = false;
  at::Tensor prefetched;                           // [padded], being gathered ahead of use
  dist::PendingCollective prefetch;                // its all-gather
  at::Tensor retained;                             // [padded], kept whole since its last run (release)
  bool kept = false;                               // retained under the keep budget, not just for a turn
  // Zero3Options::resident_layers: `full` gathered again after an update, in flight until waited for;
  // written through `full_alias` (same memory, a version counter of its own, see refresh_resident).
  dist::PendingCollective refresh;
  at::Tensor full_alias;
  // Without gradient checkpointing: the gathered memory the weights autograd saved in forward view.
  // Emptied after the forward (saved_bytes to refill) and refilled before the backward, in place.
  c10::Storage saved;
  size_t saved_bytes = 0;
};

// Reduces a layer's flat gradient once autograd has accumulated it: a layer that runs once (kept
// whole, no recompute) has no release after its backward to do it.
struct Zero3Parameters::ReduceWhenAccumulated final : torch::autograd::PostAccumulateGradHook {
  ReduceWhenAccumulated(Zero3Parameters* owner, Unit* unit) : owner(owner), unit(unit) {}
  void operator()(const torch::autograd::Variable& flat_leaf) override {
    owner->reduce_flat_gradient(*unit, flat_leaf);
    owner->let_go_saved(*unit);  // every node that used the weights has run: they produced this gradient
  }
  Zero3Parameters* owner;
  Unit* unit;
};

namespace {

// A storage's memory goes back to the allocator; the storage itself, and every tensor viewing it
// (those autograd saved among them), stays, holding nothing until refilled.
void empty_storage(c10::Storage& storage) {
  c10::StorageImpl& impl = *storage.unsafeGetStorageImpl();
  impl.set_data_ptr(at::DataPtr(nullptr, impl.device()));
  impl.set_nbytes(0);
}

// Moves `whole`'s memory (a tensor over all of its own storage) under `into`, emptying `whole`.
void move_storage(const at::Tensor& whole, c10::Storage& into) {
  c10::StorageImpl& from = *whole.storage().unsafeGetStorageImpl();
  c10::StorageImpl& to = *into.unsafeGetStorageImpl();
  const size_t bytes = from.nbytes();
  to.set_data_ptr_noswap(from.set_data_ptr(at::DataPtr(nullptr, from.device())));
  to.set_nbytes(bytes);
  from.set_nbytes(0);
}

}  // namespace

bool gathers_on_copy_engines(const std::string& engine, bool over_nccl, int64_t world_size, int64_t layer_bytes) {
  if (engine == "copy") return true;
  return engine == "auto" && over_nccl && world_size > 1 && layer_bytes >= kCopyEngineLayerBytes;
}

Zero3Parameters::Zero3Parameters(CausalLM& model, const std::map<std::string, at::Tensor>& weights,
                                 const std::function<bool(const std::string&)>& trains,
                                 const std::function<bool(const std::string&)>& decays, ShardComm comm,
                                 Zero3Options options)
    : model_(model), comm_(std::move(comm)), options_(options) {
  at::NoGradGuard no_grad;
  const int64_t layers = model.config().num_hidden_layers;
  for (int64_t i = 0; i <= layers; ++i) {
    auto unit = std::make_unique<Unit>();
    unit->label = i == 0 ? "outer (embeddings, final norm, lm_head)" : str("layer ", i - 1);
    units_.push_back(std::move(unit));
  }
  // std::map: names in the same order on every rank, which the flat layout needs.
  for (const auto& [name, tensor] : model.parameters()) {
    const int64_t layer = decoder_layer_of(name);
    PDSD_CHECK(layer < layers, "ZeRO-3: weight ", name, " names layer ", layer, " of a ", layers, "-layer model");
    Unit& unit = *units_[static_cast<size_t>(layer + 1)];
    auto it = weights.find(name);
    PDSD_CHECK(it != weights.end(), "ZeRO-3: no weight '", name, "' to shard");
    const bool t = trains(name);
    PDSD_CHECK(unit.names.empty() || unit.trains == t, "ZeRO-3: ", unit.label, " has trainable and frozen weights (",
               name, "); a unit trains all or nothing");
    unit.trains = t;
    unit.names.push_back(name);
    unit.shapes.push_back(it->second.sizes().vec());
    unit.decay.push_back(decays(name));
  }
  const auto compute = at::TensorOptions().dtype(options_.compute_dtype).device(options_.device);
  const auto fp32 = at::TensorOptions().dtype(at::kFloat).device(options_.device);
  for (auto& u : units_) {
    std::vector<int64_t> numels;
    for (const auto& shape : u->shapes) numels.push_back(c10::multiply_integers(shape));
    u->layout.emplace(numels, comm_.rank, comm_.world_size);
  }
  if (options_.resident_layers) {
    PDSD_CHECK(!options_.copy_engine_gathers, "ZeRO-3: resident layers take no gather slots (zero3_gather_engine copy)");
    int64_t bytes = 0;
    for (size_t i = 1; i < units_.size(); ++i) {
      bytes += units_[i]->layout->padded * static_cast<int64_t>(c10::elementSize(options_.compute_dtype));
    }
    if (bytes > options_.keep_gathered_bytes) {
      throw InputError(str("cuda_graphs with zero_stage 3 keeps every decoder layer whole on each rank (", (bytes + (1 << 20) - 1) >> 20,
                           " MiB here, as replicated weights would be; the fp32 masters, optimizer state and gradients stay "
                           "sharded), but zero3_keep_gathered_mb is ", static_cast<double>(options_.keep_gathered_bytes) / (1 << 20),
                           ": raise it to at least ", (bytes + (1 << 20) - 1) >> 20, ", or set cuda_graphs: false"));
    }
  }
  // Copy-engine gathers: every layer's shard in one region of gather memory and a few slots for the
  // gathered layers in another, asked for in the same sizes and order on every rank (the shards are
  // equal in size on every rank). The outer unit keeps ordinary memory: it is gathered at most once a
  // step.
  at::Tensor layer_shards;
  if (options_.copy_engine_gathers && comm_.gather_memory && units_.size() > 1) {
    int64_t shards = 0, widest = 0;
    for (size_t i = 1; i < units_.size(); ++i) {
      shards += units_[i]->layout->shard;
      widest = std::max(widest, units_[i]->layout->padded);
    }
    layer_shards = comm_.gather_memory(shards, compute).zero_();  // the last rank's padding gathers as zeros
    slots_.emplace(comm_.gather_memory(kGatherSlots * widest, compute), kGatherSlots, widest);
  }
  int64_t next_shard = 0;
  for (auto& u : units_) {
    Unit& unit = *u;
    const int64_t shard = unit.layout->shard;
    if (layer_shards.defined() && &unit != units_[0].get()) {
      unit.shard = layer_shards.narrow(0, next_shard, shard);
      next_shard += shard;
    } else {
      unit.shard = at::zeros({shard}, compute);
    }
    if (unit.trains) {
      unit.master = at::zeros({shard}, fp32);
      unit.exp_avg = at::zeros({shard}, fp32);
      unit.exp_avg_sq = at::zeros({shard}, fp32);
      unit.grad = at::zeros({shard}, fp32);
    }
    for (const auto& piece : unit.layout->pieces) {
      // Only this rank's part of the (memory-mapped) weight is ever read and copied.
      at::Tensor src = weights.at(unit.names[piece.tensor]).reshape({-1}).narrow(0, piece.tensor_offset, piece.length);
      unit.shard.narrow(0, piece.shard_offset, piece.length).copy_(src);
      if (unit.trains) {
        unit.master.narrow(0, piece.shard_offset, piece.length).copy_(src);
        unit.steps.push_back(at::zeros({}, fp32));
      }
    }
    for (const auto& name : unit.names) model_.parameters()[name] = at::Tensor();  // nothing whole at rest
  }
  if (options_.resident_layers) make_resident();
}

void Zero3Parameters::make_resident() {
  for (size_t i = 1; i < units_.size(); ++i) {
    Unit& unit = *units_[i];
    {
      at::NoGradGuard no_grad;
      unit.full = at::zeros({unit.layout->padded}, unit.shard.options());
      // Not a view: an alias over the same memory with a version counter of its own.
      unit.full_alias = at::for_blob(unit.full.data_ptr(), {unit.layout->padded})
                            .options(unit.full.options())
                            .target_device(unit.full.device())
                            .make_tensor();
    }
    // The weights as views of the layer, once: as leaves of one flat leaf when the layer trains
    // (gather() explains why), whose post-accumulate hook reduce-scatters each micro-batch's
    // gradient as without resident layers. Made once, these views stay the model's weights for the
    // whole job, at the same addresses.
    gather(unit, /*as_leaves=*/unit.trains);
    if (unit.trains) {
      torch::autograd::impl::set_post_acc_grad_hooks(unit.flat_leaf, std::make_unique<ReduceWhenAccumulated>(this, &unit));
    }
    refresh_resident(unit);
    kept_bytes_ += gathered_bytes(unit);  // counted against the budget (a frozen outer unit kept too)
  }
  most_layers_kept_ = static_cast<int64_t>(units_.size()) - 1;
  most_kept_bytes_ = kept_bytes_;
}

// The new weights written into the layer's memory, through an alias whose version counter is not the
// weights' own: the weights' views keep their autograd history, which an in-place write they saw would
// have autograd rebuild per view (one full-size gradient each), and no graph that saved them is alive
// after an update.
void Zero3Parameters::refresh_resident(Unit& unit) {
  at::NoGradGuard no_grad;
  if (comm_.all_gather_async) {
    unit.refresh = comm_.all_gather_async(unit.full_alias, unit.shard);
  } else {
    comm_.all_gather(unit.full_alias, unit.shard);
  }
}

void Zero3Parameters::wait_for_layer(int64_t layer) {
  if (options_.resident_layers) units_.at(static_cast<size_t>(layer) + 1)->refresh.wait();
}

Zero3Parameters::~Zero3Parameters() = default;

void Zero3Parameters::gather(Unit& unit, bool as_leaves) {
  PDSD_CHECK(!unit.gathered, "ZeRO-3: ", unit.label, " gathered twice");
  at::NoGradGuard no_grad;
  const FlatShardLayout& layout = *unit.layout;
  // The outer unit stays gathered across a step's micro-batches and its gradients accumulate in its
  // leaves: gathered from the fp32 masters, they accumulate in fp32 (as whole weights do without
  // ZeRO-3). Layers are reduced into the fp32 shard after every backward, so bf16 suffices there.
  const at::Tensor& source = as_leaves && &unit == units_[0].get() ? unit.master : unit.shard;
  if (resident(unit)) {  // filled by refresh_resident
  } else if (unit.retained.defined()) {  // still whole from its last run (see release)
    unit.full = std::exchange(unit.retained, at::Tensor());
  } else if (source.is_same(unit.shard)) {
    unit.full = gathered_shard(unit);
  } else {
    unit.full = at::empty({layout.padded}, source.options());
    comm_.all_gather(unit.full, source);
  }
  // Kept whole from now until its weights change, if the budget allows (see release). A gather slot
  // comes round again a few gathers later (gather_slots.h), so a kept layer moves out of it, once,
  // before anything views it. A layer that runs once (no gradient checkpointing) stays in its slot:
  // its memory is moved out from under autograd's saved weights right after its forward, which
  // frees the slot, and a fresh gather's moved back before its backward (run_once).
  if (&unit != units_[0].get() && !resident(unit) && !unit.kept && keepable(unit)) keep(unit);
  if (unit.kept && slots_ && slots_->holds(unit.full)) unit.full = unit.full.clone();
  unit.leaves.clear();
  if (as_leaves && &unit != units_[0].get()) {
    // A layer about to be recomputed and backpropagated: the gathered flat buffer is the one leaf,
    // and the weights are views of it made with autograd on (as FSDP's flat parameter). Backward's
    // split node then concatenates the weights' gradients into one flat gradient, padding included,
    // which is the reduce-scatter's input as it is: one accumulation per layer, not one per weight
    // plus a copy of each into a flat buffer (host operators are what a small model's step costs).
    at::AutoGradMode enable(true);
    unit.flat_leaf = unit.full.detach().requires_grad_(true);
    std::vector<int64_t> sizes;
    for (const auto& shape : unit.shapes) sizes.push_back(c10::multiply_integers(shape));
    if (layout.padded > layout.total) sizes.push_back(layout.padded - layout.total);
    std::vector<at::Tensor> pieces = unit.flat_leaf.split_with_sizes(sizes);
    for (size_t i = 0; i < unit.names.size(); ++i) unit.leaves.push_back(pieces[i].view(unit.shapes[i]));
  } else {
    for (size_t i = 0; i < unit.names.size(); ++i) {
      at::Tensor w = unit.full.narrow(0, layout.offsets[i], c10::multiply_integers(unit.shapes[i])).view(unit.shapes[i]);
      unit.leaves.push_back(as_leaves ? w.detach().requires_grad_(true) : w);
    }
  }
  for (size_t i = 0; i < unit.names.size(); ++i) model_.parameters()[unit.names[i]] = unit.leaves[i];
  unit.gathered = true;
}

at::Tensor Zero3Parameters::gathered_shard(Unit& unit) {
  if (unit.prefetched.defined()) {  // gathered ahead
    unit.prefetch.wait();
    return std::exchange(unit.prefetched, at::Tensor());
  }
  at::Tensor full = gather_buffer(unit);
  comm_.all_gather(full, unit.shard);
  return full;
}

void Zero3Parameters::prefetch_layer(int64_t layer) {
  if (layer < 0 || layer >= static_cast<int64_t>(units_.size()) - 1 || !comm_.all_gather_async) return;
  Unit& unit = *units_[static_cast<size_t>(layer) + 1];
  if (unit.gathered || unit.prefetched.defined() || unit.retained.defined()) return;
  at::NoGradGuard no_grad;
  unit.prefetched = gather_buffer(unit);
  unit.prefetch = comm_.all_gather_async(unit.prefetched, unit.shard);
}

at::Tensor Zero3Parameters::gather_buffer(const Unit& unit) {
  if (slots_ && &unit != units_[0].get()) return slots_->take(unit.layout->padded, unit.label);
  return at::empty({unit.layout->padded}, unit.shard.options());
}

void Zero3Parameters::release(Unit& unit) {
  for (const auto& name : unit.names) model_.parameters()[name] = at::Tensor();
  unit.leaves.clear();
  unit.flat_leaf = at::Tensor();
  unit.full = at::Tensor();
  unit.gathered = false;
}

void Zero3Parameters::reduce_flat_gradient(Unit& unit, const at::Tensor& flat_leaf) {
  at::NoGradGuard no_grad;
  const at::ScalarType dtype = options_.reduce_dtype.value_or(flat_leaf.scalar_type());
  const auto options = unit.grad.options().dtype(dtype);
  const at::Tensor& g = flat_leaf.grad();
  Reduction r{&unit, g.defined() ? g.to(dtype) : at::zeros({unit.layout->padded}, options),
              at::empty({unit.layout->shard}, options), {}};
  flat_leaf.mutable_grad() = at::Tensor();
  issue_reduction(std::move(r));
}

void Zero3Parameters::reduce_gradients(Unit& unit) {
  if (unit.flat_leaf.defined()) {  // a layer: its gradient is already flat and padded (see gather)
    reduce_flat_gradient(unit, unit.flat_leaf);
    return;
  }
  at::NoGradGuard no_grad;
  const FlatShardLayout& layout = *unit.layout;
  const at::ScalarType dtype = options_.reduce_dtype.value_or(unit.leaves.front().scalar_type());
  const auto options = unit.grad.options().dtype(dtype);
  Reduction r{&unit, flat_gradients(unit.leaves, layout.padded, dtype), at::empty({layout.shard}, options), {}};
  for (auto& leaf : unit.leaves) leaf.mutable_grad() = at::Tensor();
  issue_reduction(std::move(r));
}

void Zero3Parameters::issue_reduction(Reduction r) {
  if (comm_.reduce_scatter_async) {
    r.pending = comm_.reduce_scatter_async(r.reduced, r.flat);
  } else {
    comm_.reduce_scatter_sum(r.reduced, r.flat);
  }
  reducing_.push_back(std::move(r));
  complete_reductions(/*keep=*/2);
}

void Zero3Parameters::complete_reductions(size_t keep) {
  at::NoGradGuard no_grad;
  while (reducing_.size() > keep) {
    Reduction& r = reducing_.front();
    r.pending.wait();
    r.unit->grad.add_(r.reduced);
    reducing_.pop_front();
  }
}

// A layer's run (forward, or its recomputation in backward): gather it, and start gathering the ones
// that run next — the next layers in forward, the previous ones in backward.
void Zero3Parameters::acquire(int64_t layer, bool for_backward) {
  take(layer, for_backward, /*as_leaves=*/for_backward && units_[static_cast<size_t>(layer) + 1]->trains);
}

void Zero3Parameters::take(int64_t layer, bool for_backward, bool as_leaves) {
  Unit& unit = *units_[static_cast<size_t>(layer) + 1];
  // A forward starts: a last layer kept for a backward that never came is dropped, so no layer stays
  // whole across a whole pass (gather_slots.h counts on that).
  if (layer == 0 && !for_backward) {
    for (size_t i = 2; i < units_.size(); ++i) {
      if (!units_[i]->kept) units_[i]->retained = at::Tensor();
    }
    // So is the memory of a forward without gradient checkpointing whose backward never came (its
    // graph, if still alive, owns it).
    for (size_t i = 1; i < units_.size(); ++i) units_[i]->saved = c10::Storage();
  }
  gather(unit, as_leaves);
  // Two layers ahead: each all-gather is a meeting of every rank, and a host that runs a layer behind
  // its peer (small models are bound by the host's per-operator cost) then still finds the next
  // layer's weights there, instead of stalling both.
  for (int64_t ahead = 1; ahead <= kPrefetchLayers; ++ahead) {
    if (for_backward) {
      prefetch_for_backward(layer - ahead);
    } else {
      prefetch_layer(layer + ahead);
    }
  }
}

// Two layers are kept whole past their run, because the next run of a layer is theirs: the last
// layer of a training forward (backward starts with it) and layer 0 after backward (the next
// forward starts with it). That saves two all-gathers per micro-batch, the two that nothing could
// prefetch. Beyond those, layers are kept while the keep budget allows (Zero3Options::
// keep_gathered_bytes), first come first kept, until their weights change. Every rank keeps the same
// ones (the same layers run in the same order everywhere), so the ranks still issue the same
// all-gathers.
void Zero3Parameters::release(int64_t layer, bool after_backward) {
  Unit& unit = *units_[static_cast<size_t>(layer) + 1];
  if (after_backward && unit.trains) reduce_gradients(unit);
  const bool last = layer + 2 == static_cast<int64_t>(units_.size());
  const bool turn = after_backward ? layer == 0 : last && backward_follows_;
  at::Tensor full = unit.kept || turn ? unit.full : at::Tensor();
  release(unit);
  unit.retained = std::move(full);
}

bool Zero3Parameters::keepable(const Unit& unit) const {
  return unit.kept || kept_bytes_ + gathered_bytes(unit) <= options_.keep_gathered_bytes;
}

void Zero3Parameters::keep(Unit& unit) {
  unit.kept = true;
  kept_bytes_ += gathered_bytes(unit);
  most_kept_bytes_ = std::max(most_kept_bytes_, kept_bytes_);
  if (&unit != units_[0].get()) most_layers_kept_ = std::max(most_layers_kept_, ++layers_kept_);
}

void Zero3Parameters::drop_kept(Unit& unit) {
  unit.retained = at::Tensor();
  if (unit.kept) {
    kept_bytes_ -= gathered_bytes(unit);
    if (&unit != units_[0].get()) --layers_kept_;
  }
  unit.kept = false;
}

CausalLM::LayerRunner Zero3Parameters::layer_runner() {
  if (options_.resident_layers) {  // the weights are always there; only an update's gather to wait for
    return [this](int64_t layer, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                  const AttentionLayout& attention) -> at::Tensor {
      wait_for_layer(layer);
      if (at::GradMode::is_enabled() && x.requires_grad() && options_.gradient_checkpointing) {
        return checkpointed_layer_forward(model_, layer, x, cos, sin, attention);
      }
      return model_.layer_forward(layer, x, cos, sin, attention);
    };
  }
  return [this](int64_t layer, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                const AttentionLayout& attention) -> at::Tensor {
    backward_follows_ = at::GradMode::is_enabled() && x.requires_grad();
    if (layer == 0) lowest_backward_layer_ = static_cast<int64_t>(units_.size()) - 1;
    if (backward_follows_) lowest_backward_layer_ = std::min(lowest_backward_layer_, layer);
    // Training with gradient checkpointing: the layer runs again in backward, with this class
    // supplying the weights (checkpointed_layer.h).
    if (backward_follows_ && options_.gradient_checkpointing) {
      return checkpointed_layer_forward(model_, layer, x, cos, sin, attention, this);
    }
    if (backward_follows_) return run_once(layer, x, cos, sin, attention);
    take(layer, /*for_backward=*/false, /*as_leaves=*/false);  // evaluation
    at::Tensor out = model_.layer_forward(layer, x, cos, sin, attention);
    release(layer, /*after_backward=*/false);
    return out;
  };
}

// Without gradient checkpointing a layer runs once and autograd keeps what backward needs, the
// weights among it (views of the gathered memory), as FSDP and DeepSpeed do. A layer kept whole
// (the keep budget) simply stays so. Any other gives its memory back after the forward while its
// storage stays, empty, under the saved views; before its backward the layer is gathered again
// (prefetched like any) and the memory put back under them. Backward's order of work comes from
// hooks: the gradient of the last layer's output starts the backward of the layers; the gradient
// of a layer's input means its backward is over (for frozen weights: what used them has run) and
// the one below starts. A trainable layer's flat gradient is reduce-scattered, and its memory
// given back, once autograd has accumulated it.
at::Tensor Zero3Parameters::run_once(int64_t layer, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                     const AttentionLayout& attention) {
  Unit& unit = *units_[static_cast<size_t>(layer) + 1];
  take(layer, /*for_backward=*/false, /*as_leaves=*/unit.trains);
  ++runs_without_recompute_;
  if (unit.trains) {
    torch::autograd::impl::set_post_acc_grad_hooks(unit.flat_leaf, std::make_unique<ReduceWhenAccumulated>(this, &unit));
  }
  at::Tensor out = model_.layer_forward(layer, x, cos, sin, attention);
  const bool last = layer + 2 == static_cast<int64_t>(units_.size());
  if (last) out.register_hook([this, layer](const at::Tensor&) { before_backward(layer); });
  x.register_hook([this, layer, u = &unit](const at::Tensor&) {
    if (!u->trains) let_go_saved(*u);
    if (layer > 0) before_backward(layer - 1);
  });
  if (unit.kept) {
    release(layer, /*after_backward=*/false);
    return out;
  }
  unit.saved = unit.full.storage();
  unit.saved_bytes = unit.saved.nbytes();
  if (!last) empty_storage(unit.saved);  // the last layer's backward comes next: it stays
  release(unit);
  return out;
}

void Zero3Parameters::before_backward(int64_t layer) {
  Unit& unit = *units_[static_cast<size_t>(layer) + 1];
  if (unit.saved && unit.saved.nbytes() == 0) {
    at::NoGradGuard no_grad;
    at::Tensor full = gathered_shard(unit);
    // A gather slot's loan is a storage of its own (gather_slots.h): its memory, and the slot with
    // it, moves under the saved weights as any gathered memory does, without a copy.
    if (full.storage_offset() != 0 || full.storage().nbytes() != unit.saved_bytes) full = full.clone();
    move_storage(full, unit.saved);
  }
  for (int64_t ahead = 1; ahead <= kPrefetchLayers; ++ahead) prefetch_for_backward(layer - ahead);
}

void Zero3Parameters::prefetch_for_backward(int64_t layer) {
  if (layer >= lowest_backward_layer_) prefetch_layer(layer);
}

void Zero3Parameters::let_go_saved(Unit& unit) {
  if (!unit.saved) return;
  if (&unit == units_[1].get()) {
    // Layer 0 at the turn: whole from its backward into the next forward, as with the recompute.
    unit.retained = at::empty({0}, unit.shard.options()).set_(unit.saved, 0, {unit.layout->padded}, {1});
  } else {
    empty_storage(unit.saved);
  }
  unit.saved = c10::Storage();
}

void Zero3Parameters::gather_outer() {
  Unit& outer = *units_[0];
  if (!outer.gathered) gather(outer, outer.trains && at::GradMode::is_enabled());
}

void Zero3Parameters::release_outer() {
  Unit& outer = *units_[0];
  if (!outer.gathered) return;
  const bool has_grads = std::any_of(outer.leaves.begin(), outer.leaves.end(),
                                     [](const at::Tensor& l) { return l.requires_grad() && l.grad().defined(); });
  complete_reductions(0);  // the layers' gradients, before the outer unit's
  if (outer.trains && has_grads) reduce_gradients(outer);
  complete_reductions(0);
  // A frozen outer unit (LoRA, freeze) never changes: kept whole within the budget, as a frozen
  // layer is, it is gathered once for the whole job instead of once per step.
  if (!outer.trains && !outer.kept && keepable(outer)) keep(outer);
  at::Tensor full = outer.kept ? outer.full : at::Tensor();
  release(outer);
  outer.retained = std::move(full);
}

at::Tensor Zero3Parameters::step(double lr, double max_grad_norm) {
  at::NoGradGuard no_grad;
  complete_reductions(0);
  at::Tensor sq = at::zeros({1}, at::TensorOptions().dtype(at::kDouble).device(options_.device));
  for (auto& u : units_) {
    if (u->trains) sq += u->grad.norm().to(at::kDouble).square();  // no float64 copy of the shard
  }
  comm_.all_reduce_sum(sq);
  const at::Tensor norm = sq.sqrt();
  const at::Tensor coef = max_grad_norm > 0 ? clip_coefficient(norm, max_grad_norm).to(at::kFloat) : at::Tensor();
  std::vector<AdamWSlot> slots;
  for (auto& u : units_) {
    if (!u->trains) continue;
    if (coef.defined()) u->grad.mul_(coef);
    for (size_t k = 0; k < u->layout->pieces.size(); ++k) {
      const auto& p = u->layout->pieces[k];
      slots.push_back({u->master.narrow(0, p.shard_offset, p.length), u->grad.narrow(0, p.shard_offset, p.length),
                       u->exp_avg.narrow(0, p.shard_offset, p.length), u->exp_avg_sq.narrow(0, p.shard_offset, p.length),
                       u->steps[k], u->decay[p.tensor]});
    }
  }
  adamw_update(slots, lr, options_.adam);
  for (auto& u : units_) {
    if (!u->trains) continue;
    u->refresh.wait();  // a resident layer's last regather, if no run waited for it, still reads the shard
    u->shard.copy_(u->master);
    u->grad.zero_();
    if (resident(*u)) {
      refresh_resident(*u);  // in place; the next forward waits for it (wait_for_layer)
    } else {
      drop_kept(*u);  // the weights it held are the old ones
    }
  }
  return norm;
}

int64_t Zero3Parameters::gathered_bytes(const Unit& unit) {
  return unit.layout->padded * static_cast<int64_t>(unit.shard.element_size());
}

int64_t Zero3Parameters::gathered_layer_bytes() const {
  int64_t widest = 0;
  for (size_t i = 1; i < units_.size(); ++i) widest = std::max(widest, gathered_bytes(*units_[i]));
  return widest;
}

int64_t Zero3Parameters::layer_bytes_held() const {
  int64_t bytes = 0;
  for (size_t i = 1; i < units_.size(); ++i) {
    const Unit& u = *units_[i];
    for (const at::Tensor* t : {&u.full, &u.prefetched, &u.retained}) bytes += t->defined() ? t->nbytes() : 0;
    if (u.saved) bytes += static_cast<int64_t>(u.saved.nbytes());  // emptied: 0
  }
  return bytes;
}

bool Zero3Parameters::layer_trains(int64_t layer) const { return units_.at(static_cast<size_t>(layer) + 1)->trains; }

bool Zero3Parameters::trains_anything() const {
  return std::any_of(units_.begin(), units_.end(), [](const auto& u) { return u->trains; });
}

int64_t Zero3Parameters::parameter_bytes() const {
  int64_t bytes = 0;
  for (const auto& u : units_) bytes += u->shard.nbytes() + (u->trains ? u->master.nbytes() : 0);
  return bytes;
}

int64_t Zero3Parameters::state_bytes() const {
  int64_t bytes = 0;
  for (const auto& u : units_) {
    if (u->trains) bytes += u->exp_avg.nbytes() + u->exp_avg_sq.nbytes() + static_cast<int64_t>(u->steps.size()) * 4;
  }
  return bytes;
}

std::vector<TrainableParameter> Zero3Parameters::checkpoint_layout() const {
  std::vector<TrainableParameter> out;
  for (const auto& u : units_) {
    if (!u->trains) continue;
    for (size_t i = 0; i < u->names.size(); ++i) {
      out.push_back({u->names[i], at::empty(u->shapes[i], at::TensorOptions().dtype(at::kFloat).device(at::kMeta)),
                     u->decay[i]});
    }
  }
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> Zero3Parameters::state_tensors() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  int64_t unit_begin = 0, unit_first_param = 0;  // where each trainable unit starts in checkpoint_layout()
  for (const auto& u : units_) {
    if (!u->trains) continue;
    const FlatShardLayout& layout = *u->layout;
    for (size_t k = 0; k < layout.pieces.size(); ++k) {
      const auto& p = layout.pieces[k];
      const int64_t begin = unit_begin + layout.offsets[p.tensor] + p.tensor_offset;
      out.emplace_back(str("param@", begin), u->master.narrow(0, p.shard_offset, p.length));
      out.emplace_back(str("exp_avg@", begin), u->exp_avg.narrow(0, p.shard_offset, p.length));
      out.emplace_back(str("exp_avg_sq@", begin), u->exp_avg_sq.narrow(0, p.shard_offset, p.length));
      out.emplace_back(str("step@", unit_first_param + static_cast<int64_t>(p.tensor)), u->steps[k]);
    }
    unit_begin += layout.total;
    unit_first_param += static_cast<int64_t>(u->names.size());
  }
  return out;
}

void Zero3Parameters::masters_changed() {
  at::NoGradGuard no_grad;
  for (auto& u : units_) {
    if (!u->trains) continue;
    u->refresh.wait();  // the start's gather of a resident layer still reads the shard
    u->shard.copy_(u->master);
    if (resident(*u)) {
      refresh_resident(*u);
    } else {
      drop_kept(*u);
    }
  }
}

std::map<std::string, at::Tensor> Zero3Parameters::gather_full_on_cpu(bool keep, std::optional<at::ScalarType> dtype) {
  at::NoGradGuard no_grad;
  for (auto& u : units_) drop_kept(*u);  // the same on every rank
  std::map<std::string, at::Tensor> out;
  for (auto& u : units_) {
    const at::Tensor& source = u->trains ? u->master : u->shard;
    const at::Tensor shard = source.to(dtype.value_or(source.scalar_type()));
    at::Tensor full = at::empty({u->layout->padded}, shard.options());
    comm_.all_gather(full, shard);
    if (!keep) continue;
    full = full.cpu();
    for (size_t i = 0; i < u->names.size(); ++i) {  // views of the unit's one host copy
      out[u->names[i]] = full.narrow(0, u->layout->offsets[i], c10::multiply_integers(u->shapes[i])).view(u->shapes[i]);
    }
  }
  return out;
}

}  // namespace pdsd
