// A fixed set of equal buffers carved from one allocation, handed out for ZeRO-3's gathered layers
// instead of fresh allocations. The allocation is asked of the backend once (Collectives::
// gather_memory), so that it can be registered for copy-engine all-gathers, which need the memory
// they write registered beforehand.
//
// A slot is free again only when no tensor views it any more (its own storage has no other owner):
// a gathered layer's weights may be held past its release (autograd keeps what it saved until its
// graph goes), and writing the next layer over them would corrupt them silently. When no slot is
// free, take() returns an undefined tensor and the caller allocates as usual.
//
// Reuse across CUDA streams needs no event here: the collectives layer orders every collective after
// the work already queued on the caller's stream, so an all-gather into a slot issued after its last
// tenant was released runs after every kernel that read that tenant.
//
//   GatherSlots slots(comm.gather_memory(4 * n, options), 4, n);
//   at::Tensor full = slots.take(layer_numel);  // undefined: all four are still referenced
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace pdsd {

class GatherSlots {
 public:
  // `region`: contiguous, at least slots × slot_numel elements; the slots borrow it and keep it alive.
  GatherSlots(const at::Tensor& region, int64_t slots, int64_t slot_numel);

  // A free slot's first `numel` elements (numel <= slot_numel()), or undefined when none is free.
  at::Tensor take(int64_t numel);
  int64_t slot_numel() const { return slot_numel_; }
  int64_t size() const { return static_cast<int64_t>(slots_.size()); }
  // Slots some tensor still views.
  int64_t in_use() const;

 private:
  int64_t slot_numel_;
  std::vector<at::Tensor> slots_;  // each over its own storage, so its owners can be counted
  size_t next_ = 0;                // round robin: the slot released longest ago is tried first
};

}  // namespace pdsd
