// ZeRO-3's gather slots (worker/train/gather_slots.h): fixed buffers over one region, handed out
// only when nothing views them any more, so a layer gathered into a slot can never overwrite weights
// that autograd (or anyone) still holds.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "common/error.h"
#include "worker/train/gather_slots.h"

namespace pdsd {
namespace {

TEST(GatherSlots, SlotsAreDistinctPiecesOfTheRegion) {
  at::Tensor region = at::zeros({30});
  GatherSlots slots(region, 3, 10);
  at::Tensor a = slots.take(10), b = slots.take(7), c = slots.take(10);
  ASSERT_TRUE(a.defined() && b.defined() && c.defined());
  EXPECT_EQ(b.numel(), 7);
  a.fill_(1);
  b.fill_(2);
  c.fill_(3);
  // Every element of the region belongs to exactly one slot (b's last three stay untouched).
  EXPECT_EQ(region.sum().item<double>(), 10 * 1 + 7 * 2 + 10 * 3);
  EXPECT_EQ(slots.in_use(), 3);
}

TEST(GatherSlots, AHeldSlotIsNeverHandedOutAgain) {
  GatherSlots slots(at::zeros({20}), 2, 10);
  at::Tensor a = slots.take(10), b = slots.take(10);
  EXPECT_FALSE(slots.take(10).defined()) << "both slots are held";
  // Views made from a slot hold it too (a layer's weights are views of its gathered buffer, and
  // autograd saves such views); so does a detached alias.
  at::Tensor weight = a.narrow(0, 2, 4).view({2, 2});
  at::Tensor alias = b.detach();
  a.reset();
  b.reset();
  EXPECT_FALSE(slots.take(10).defined()) << "a view and an alias still hold the slots";
  weight.reset();
  at::Tensor again = slots.take(10);
  ASSERT_TRUE(again.defined()) << "the slot whose last view went is free";
  again.fill_(5);
  EXPECT_EQ(alias.sum().item<double>(), 0) << "the free slot was not the one still aliased";
}

TEST(GatherSlots, TheSlotsKeepTheRegionAlive) {
  at::Tensor region = at::ones({8});
  const void* where = region.data_ptr();
  GatherSlots slots(region, 2, 4);
  region.reset();
  at::Tensor a = slots.take(4);
  EXPECT_EQ(a.data_ptr(), where);
  EXPECT_EQ(a.sum().item<double>(), 4) << "the region's contents are still there";
}

TEST(GatherSlots, WhatCannotFitIsAnError) {
  EXPECT_THROW(GatherSlots(at::zeros({10}), 2, 6), Error);
  GatherSlots slots(at::zeros({10}), 2, 5);
  EXPECT_THROW(slots.take(6), Error);
}

}  // namespace
}  // namespace pdsd
