// A fixed set of equal buffers carved from one allocation, handed out for ZeRO-3's gathered layers
// instead of fresh allocations. The allocation is asked of the backend once (Collectives::
// gather_memory), so that it can be registered for copy-engine all-gathers, which need the memory
// they write registered beforehand.
//
// Slots go round in a fixed order, the same on every rank: a copy-engine all-gather writes each
// rank's piece straight into the peers' memory at the same offset as its own, so every rank must
// gather a layer into the same slot, and every rank must take one (a rank that fell back to other
// memory would issue its all-gather on another communicator than its peers, and hang them). The
// caller keeps at most slots - 1 layers whole at a time, so the slot whose turn it is was released
// `slots` takes ago. take() checks that nothing holds that slot any more: a gathered layer's weights
// held past their release would otherwise be overwritten silently. Should one be, it throws, naming
// the slot, instead.
//
// What take() lends is a tensor over a storage of its own, whose memory (the storage's DataPtr)
// holds the slot. ZeRO-3 without gradient checkpointing moves that memory out from under autograd's
// saved weights after a layer's forward and moves a fresh gather's back before its backward
// (zero3_parameters.cpp): the slot is then held exactly while its memory lies under some storage,
// and the layer never has to be copied out of the slot into memory of its own. (So a training
// forward whose graph outlived the next forward without a backward would still hold its last
// layer's slot, and the next take of it would throw: the trainer never does that.)
//
// Reuse across CUDA streams needs no event here: the collectives layer orders every collective after
// the work already queued on the caller's stream, so an all-gather into a slot issued after its last
// tenant was released runs after every kernel that read that tenant.
//
//   GatherSlots slots(comm.gather_memory(4 * n, options), 4, n);
//   at::Tensor full = slots.take(layer_numel, "layer 3");
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

namespace pdsd {

class GatherSlots {
 public:
  // `region`: contiguous, at least slots × slot_numel elements; the slots borrow it and keep it alive.
  GatherSlots(const at::Tensor& region, int64_t slots, int64_t slot_numel);

  // The next slot's first `numel` elements (numel <= slot_numel()), for `what` (named in errors),
  // over a storage of their own that holds the slot (see above).
  at::Tensor take(int64_t numel, const std::string& what);
  // Slots still held (by a tensor, or by memory moved under another storage).
  int64_t in_use() const;
  // Whether `t` lies in one of the slots.
  bool holds(const at::Tensor& t) const;

 private:
  int64_t slot_numel_;
  std::vector<at::Tensor> slots_;  // each over its own storage, so its owners can be counted
  const char* begin_;                // the region's bytes
  const char* end_;
  size_t next_ = 0;
};

}  // namespace pdsd
