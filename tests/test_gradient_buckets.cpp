// Gradient buckets (DDP, ZeRO-1/2): what each bucket's collective is handed. The flat buffer is the
// bucket's gradients end to end in reverse parameter order, zero-padded to the multiple asked, in the
// gradients' own precision unless the job names one (communication_data_type), and fp32 when a
// bucket mixes precisions.
#include <gtest/gtest.h>

#include <vector>

#include "worker/train/gradient_buckets.h"

namespace pdsd {
namespace {

TrainableParameter param(const std::string& name, int64_t n, at::ScalarType dtype, float grad) {
  at::Tensor t = at::zeros({n}, at::TensorOptions().dtype(dtype)).requires_grad_(true);
  t.mutable_grad() = at::full({n}, grad, at::TensorOptions().dtype(dtype));
  return {name, t, true};
}

struct Seen {
  std::vector<at::Tensor> flats;  // per bucket, as handed to `issue`
  std::vector<size_t> completed;
};

// Runs one armed pass with the gradients already in .grad: finish() issues every bucket in order.
Seen reduce(std::vector<TrainableParameter>& params, double cap_mb, int64_t pad, std::optional<at::ScalarType> dtype,
            bool free_gradients = false) {
  Seen seen;
  GradientBuckets::Handlers handlers;
  handlers.reduce_dtype = dtype;
  handlers.free_gradients_on_issue = free_gradients;
  handlers.issue = [&](size_t, const at::Tensor& flat) {
    seen.flats.push_back(flat.clone());
    return dist::PendingCollective();
  };
  handlers.complete = [&](size_t b, const at::Tensor&) { seen.completed.push_back(b); };
  GradientBuckets buckets(params, cap_mb, pad, handlers);
  buckets.arm();
  buckets.finish();
  return seen;
}

TEST(GradientBuckets, FlatBufferHoldsTheGradientsInTheirOwnPrecision) {
  std::vector<TrainableParameter> params = {param("a", 3, at::kBFloat16, 1.5f), param("b", 2, at::kBFloat16, -2.0f)};
  Seen seen = reduce(params, 25, /*pad=*/4, std::nullopt);
  ASSERT_EQ(seen.flats.size(), 1u);
  const at::Tensor& flat = seen.flats[0];
  EXPECT_EQ(flat.scalar_type(), at::kBFloat16) << "bf16 gradients are reduced in bf16 by default";
  ASSERT_EQ(flat.numel(), 8) << "5 elements padded to a multiple of 4";
  // Reverse order: b's gradient first, then a's, then zero padding.
  std::vector<float> expected = {-2, -2, 1.5, 1.5, 1.5, 0, 0, 0};
  EXPECT_TRUE(at::equal(flat.to(at::kFloat), at::tensor(expected)));
  EXPECT_EQ(seen.completed, std::vector<size_t>{0});
}

TEST(GradientBuckets, JobCanAskForFp32AndMixedBucketsUseIt) {
  std::vector<TrainableParameter> params = {param("a", 3, at::kBFloat16, 0.25f)};
  EXPECT_EQ(reduce(params, 25, 1, at::kFloat).flats.at(0).scalar_type(), at::kFloat);
  std::vector<TrainableParameter> mixed = {param("a", 3, at::kBFloat16, 0.25f), param("b", 2, at::kFloat, 3.0f)};
  Seen seen = reduce(mixed, 25, 1, std::nullopt);
  ASSERT_EQ(seen.flats.size(), 1u);
  EXPECT_EQ(seen.flats[0].scalar_type(), at::kFloat) << "a bucket mixing precisions is reduced in fp32";
  EXPECT_TRUE(at::equal(seen.flats[0], at::tensor({3.0f, 3.0f, 0.25f, 0.25f, 0.25f})));
}

TEST(GradientBuckets, SmallCapSplitsBucketsAndMissingGradientsAreZeros) {
  // 0.00002 MB = 20 bytes = 5 fp32 elements per bucket: each 4-element parameter is its own bucket.
  std::vector<TrainableParameter> params = {param("a", 4, at::kFloat, 1.0f), param("b", 4, at::kFloat, 2.0f),
                                            param("c", 4, at::kFloat, 3.0f)};
  params[1].tensor.mutable_grad() = at::Tensor();  // b took no part in this backward
  Seen seen = reduce(params, 0.00002, 1, std::nullopt, /*free_gradients=*/true);
  ASSERT_EQ(seen.flats.size(), 3u);
  EXPECT_TRUE(at::equal(seen.flats[0], at::full({4}, 3.0f)));
  EXPECT_TRUE(at::equal(seen.flats[1], at::zeros({4})));
  EXPECT_TRUE(at::equal(seen.flats[2], at::full({4}, 1.0f)));
  EXPECT_EQ(seen.completed, (std::vector<size_t>{0, 1, 2})) << "completed in bucket order";
  for (const auto& p : params) EXPECT_FALSE(p.tensor.grad().defined()) << p.name << ": ZeRO-2 drops .grad on issue";
}

}  // namespace
}  // namespace pdsd
