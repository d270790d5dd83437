#include "worker/train/gather_slots.h"

#include "common/error.h"

namespace pdsd {

GatherSlots::GatherSlots(const at::Tensor& region, int64_t slots, int64_t slot_numel) : slot_numel_(slot_numel) {
  PDSD_CHECK(region.is_contiguous() && slots > 0 && slot_numel > 0 && region.numel() >= slots * slot_numel,
             "gather slots: a region of ", region.numel(), " elements cannot hold ", slots, " slots of ", slot_numel);
  begin_ = static_cast<const char*>(region.data_ptr());
  end_ = begin_ + slots * slot_numel * static_cast<int64_t>(region.element_size());
  for (int64_t i = 0; i < slots; ++i) {
    char* at_ = static_cast<char*>(region.data_ptr()) + i * slot_numel * static_cast<int64_t>(region.element_size());
    // A storage of its own over the region (whose owner the deleter keeps alive): use_count() then
    // counts exactly the tensors viewing this slot.
    slots_.push_back(at::for_blob(at_, {slot_numel}).options(region.options()).deleter([keep = region](void*) {}).make_tensor());
  }
}

at::Tensor GatherSlots::take(int64_t numel, const std::string& what) {
  PDSD_CHECK(numel > 0 && numel <= slot_numel_, "gather slots: ", what, " has ", numel, " elements, more than a slot's ",
             slot_numel_);
  const size_t i = next_;
  PDSD_CHECK(slots_[i].storage().use_count() == 1, "ZeRO-3: gather slot ", i, " of ", slots_.size(), ", due for ", what,
             ", is still viewed by ", slots_[i].storage().use_count() - 1,
             " tensor(s) of the layer gathered into it before; reusing it would overwrite weights still in use");
  next_ = (i + 1) % slots_.size();
  // Lent over a storage of its own whose memory holds the slot: the slot is in use for as long as
  // that memory lies under some storage, wherever it was moved, and no longer.
  at::Tensor view = slots_[i].narrow(0, 0, numel);
  return at::for_blob(view.data_ptr(), {numel})
      .options(view.options())
      .target_device(view.device())
      .deleter([keep = view](void*) {})
      .make_tensor();
}

bool GatherSlots::holds(const at::Tensor& t) const {
  if (!t.defined()) return false;
  const auto* p = static_cast<const char*>(t.data_ptr());
  return p >= begin_ && p < end_;
}

int64_t GatherSlots::in_use() const {
  int64_t n = 0;
  for (const auto& s : slots_) n += s.storage().use_count() > 1 ? 1 : 0;
  return n;
}

}  // namespace pdsd
