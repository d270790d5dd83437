// ZeRO-3's gather slots (worker/train/gather_slots.h): fixed buffers over one region, handed out in
// a fixed round (the same slot for the same take on every rank), and never while a tensor still
// views the slot: that would overwrite weights autograd (or anyone) holds.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "common/error.h"
#include "worker/train/gather_slots.h"

namespace pdsd {
namespace {

TEST(GatherSlots, SlotsAreDistinctPiecesOfTheRegionTakenInTurn) {
  at::Tensor region = at::zeros({30});
  GatherSlots slots(region, 3, 10);
  at::Tensor a = slots.take(10, "layer 0"), b = slots.take(7, "layer 1"), c = slots.take(10, "layer 2");
  EXPECT_EQ(b.numel(), 7);
  EXPECT_EQ(static_cast<char*>(b.data_ptr()) - static_cast<char*>(a.data_ptr()), 10 * 4);
  EXPECT_EQ(static_cast<char*>(c.data_ptr()) - static_cast<char*>(b.data_ptr()), 10 * 4);
  a.fill_(1);
  b.fill_(2);
  c.fill_(3);
  // Every element of the region belongs to exactly one slot (b's last three stay untouched).
  EXPECT_EQ(region.sum().item<double>(), 10 * 1 + 7 * 2 + 10 * 3);
  EXPECT_EQ(slots.in_use(), 3);
  a.reset();
  EXPECT_EQ(slots.take(10, "layer 3").data_ptr(), region.data_ptr()) << "the round starts over at slot 0";
}

TEST(GatherSlots, ASlotStillViewedWhenItsTurnComesIsAnErrorNamingIt) {
  GatherSlots slots(at::zeros({20}), 2, 10);
  at::Tensor a = slots.take(10, "layer 0");
  // A layer's weights are views of its gathered buffer, and autograd saves such views.
  at::Tensor weight = a.narrow(0, 2, 4).view({2, 2});
  a.reset();
  slots.take(10, "layer 1").reset();
  try {
    slots.take(10, "layer 2");
    FAIL() << "slot 0 was handed out while a view of it was alive";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("gather slot 0 of 2, due for layer 2, is still viewed by 1 tensor"),
              std::string::npos) << e.what();
  }
  weight.reset();
  // The failed take did not move the round: slot 0 is due again, and now free.
  EXPECT_TRUE(slots.take(10, "layer 2").defined());
}

TEST(GatherSlots, ASlotIsHeldWhileItsMemoryLiesUnderAnyStorage) {
  // ZeRO-3 without gradient checkpointing moves a layer's memory from one storage to another (out
  // from under autograd's saved weights after the forward, back before the backward): the slot is
  // held by that memory, wherever it lies, and freed when it is let go.
  GatherSlots slots(at::zeros({20}), 2, 10);
  at::Tensor a = slots.take(10, "layer 0");
  EXPECT_EQ(a.storage_offset(), 0);
  EXPECT_EQ(a.storage().nbytes(), 10 * 4) << "a storage of its own, exactly the loan";
  at::Tensor saved = at::empty({0});  // stands for the storage under autograd's saved views
  saved.set_(a.storage(), 0, {10}, {1});
  a.reset();
  at::Tensor under = at::empty({10});
  c10::StorageImpl& from = *saved.storage().unsafeGetStorageImpl();
  under.storage().unsafeGetStorageImpl()->set_data_ptr_noswap(from.set_data_ptr(at::DataPtr(nullptr, from.device())));
  saved.reset();
  EXPECT_EQ(slots.in_use(), 1) << "the memory moved under another storage still holds slot 0";
  slots.take(10, "layer 1").reset();
  EXPECT_THROW(slots.take(10, "layer 2"), Error);
  under.storage().unsafeGetStorageImpl()->set_data_ptr(at::DataPtr(nullptr, at::kCPU));  // let go
  EXPECT_EQ(slots.in_use(), 0);
  EXPECT_TRUE(slots.take(10, "layer 2").defined());
}

TEST(GatherSlots, TheSlotsKeepTheRegionAlive) {
  at::Tensor region = at::ones({8});
  const void* where = region.data_ptr();
  GatherSlots slots(region, 2, 4);
  region.reset();
  at::Tensor a = slots.take(4, "layer 0");
  EXPECT_EQ(a.data_ptr(), where);
  EXPECT_EQ(a.sum().item<double>(), 4) << "the region's contents are still there";
}

TEST(GatherSlots, HoldsWhatLiesInTheSlotsAlone) {
  // ZeRO-3 moves a layer kept for long out of its slot (zero3_keep_gathered_mb), and asks this first.
  at::Tensor region = at::zeros({12});
  GatherSlots slots(region, 2, 5);  // elements 10 and 11 lie outside every slot
  at::Tensor a = slots.take(5, "layer 0");
  at::Tensor b = slots.take(3, "layer 1");
  EXPECT_TRUE(slots.holds(a));
  EXPECT_TRUE(slots.holds(b.narrow(0, 2, 1)));
  EXPECT_FALSE(slots.holds(region.narrow(0, 10, 2)));
  EXPECT_FALSE(slots.holds(a.clone()));
  EXPECT_FALSE(slots.holds(at::Tensor()));
}

TEST(GatherSlots, WhatCannotFitIsAnError) {
  EXPECT_THROW(GatherSlots(at::zeros({10}), 2, 6), Error);
  GatherSlots slots(at::zeros({10}), 2, 5);
  EXPECT_THROW(slots.take(6, "layer 0"), Error);
}

}  // namespace
}  // namespace pdsd
