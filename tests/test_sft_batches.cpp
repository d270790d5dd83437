// From chat-template segments to training tensors: LLaMA-Factory's truncation rule, prompt masking,
// padded and packed batches (positions restart, attention segments, no cross-sample label), the
// per-epoch shuffle, and disjoint shards per rank.
#include <gtest/gtest.h>

#include <set>

#include "common/error.h"
#include "worker/train/batch_plan.h"

namespace pdsd {
namespace {

// A stand-in tokenizer: one token per character, id = byte value.
std::vector<int32_t> bytes(std::string_view s) { return std::vector<int32_t>(s.begin(), s.end()); }

std::vector<data::Segment> chat(const std::string& prompt, const std::string& answer) {
  return {{prompt, data::Role::user, false}, {answer, data::Role::assistant, true}};
}

using Lengths = std::pair<int64_t, int64_t>;

TEST(SftBatches, InferSeqlenFollowsLlamaFactory) {
  EXPECT_EQ(infer_seqlen(10, 5, 100), Lengths(10, 5));     // fits
  EXPECT_EQ(infer_seqlen(300, 100, 256), Lengths(156, 100));  // short answer: cut the prompt
  EXPECT_EQ(infer_seqlen(100, 300, 256), Lengths(100, 156));  // short prompt: cut the answer
  EXPECT_EQ(infer_seqlen(300, 300, 256), Lengths(128, 128));  // both long: proportional
}

TEST(SftBatches, PromptIsMaskedUnlessTrainOnPrompt) {
  SftExample e = build_sft_example(chat("ab", "xyz"), bytes, {.cutoff_len = 100});
  EXPECT_EQ(e.input_ids, bytes("abxyz"));
  EXPECT_EQ(e.labels, (std::vector<int32_t>{-100, -100, 'x', 'y', 'z'}));
  e = build_sft_example(chat("ab", "xyz"), bytes, {.cutoff_len = 100, .train_on_prompt = true});
  EXPECT_EQ(e.labels, bytes("abxyz"));
}

TEST(SftBatches, MultiTurnTruncatesWithTheRemainingBudget) {
  std::vector<data::Segment> segments = {{"aaaa", data::Role::user, false}, {"bbbb", data::Role::assistant, true},
                                         {"cccc", data::Role::user, false}, {"dddd", data::Role::assistant, true}};
  SftExample e = build_sft_example(segments, bytes, {.cutoff_len = 10});
  // First pair keeps 8 tokens; the second gets a budget of 2: infer_seqlen(4, 4, 2) = (1, 1).
  EXPECT_EQ(e.input_ids, bytes("aaaabbbbcd"));
  EXPECT_EQ(e.labels, (std::vector<int32_t>{-100, -100, -100, -100, 'b', 'b', 'b', 'b', -100, 'd'}));
}

std::vector<SftExample> samples(int n) {
  std::vector<SftExample> out;
  // Distinct contents (the number is in the prompt) and varied lengths.
  for (int i = 0; i < n; ++i) out.push_back(build_sft_example(chat("p" + std::to_string(i), std::string(1 + i % 4, 'r')), bytes, {}));
  return out;
}

TEST(SftBatches, PaddedBatchesAreRightPadded) {
  BatchPlan plan(samples(8), {.batch_size = 4, .seed = 1, .pad_id = 7});
  TrainBatch b = plan.micro_batches(0)[0];
  ASSERT_EQ(b.tokens.input_ids.size(0), 4);
  EXPECT_FALSE(b.tokens.segment_ids.defined());
  for (int64_t r = 0; r < 4; ++r) {
    auto row = b.labels[r];
    auto ids = b.tokens.input_ids[r];
    int64_t real = 0;
    for (int64_t c = 0; c < ids.size(0); ++c) real += ids[c].item<int64_t>() != 7;
    for (int64_t c = real; c < ids.size(0); ++c) EXPECT_EQ(row[c].item<int64_t>(), -100);
  }
}

TEST(SftBatches, PackedRowsRestartPositionsAndMaskBoundaries) {
  BatchPlan plan(samples(12), {.batch_size = 1, .packing = true, .cutoff_len = 16, .seed = 3});
  TrainBatch b = plan.micro_batches(0)[0];
  ASSERT_TRUE(b.tokens.segment_ids.defined());
  auto seg = b.tokens.segment_ids[0], pos = b.tokens.position_ids[0], labels = b.labels[0];
  EXPECT_LE(b.tokens.input_ids.size(1), 16);
  for (int64_t c = 1; c < seg.size(0); ++c) {
    if (seg[c].item<int64_t>() != seg[c - 1].item<int64_t>() && seg[c].item<int64_t>() >= 0) {
      EXPECT_EQ(pos[c].item<int64_t>(), 0) << "positions restart at each sample";
      EXPECT_EQ(labels[c].item<int64_t>(), -100) << "no label predicted across samples";
    }
  }
  EXPECT_GT(seg.max().item<int64_t>(), 0) << "a row of 16 holds several samples";
}

// Padding-free (GPU, flash attention): the same samples as the padded micro-batch, end to end in one
// row, offsets in cu_seqlens, positions restarting, and the same labelled positions to predict.
TEST(SftBatches, PaddingFreeHoldsThePaddedBatchInOneRow) {
  BatchPlan padded(samples(16), {.batch_size = 4, .seed = 5, .gradient_accumulation_steps = 2});
  BatchPlan flat(samples(16), {.batch_size = 4, .padding_free = true, .seed = 5, .gradient_accumulation_steps = 2});
  for (int64_t step = 0; step < 2; ++step) {
    auto pb = padded.micro_batches(step), fb = flat.micro_batches(step);
    ASSERT_EQ(pb.size(), fb.size());
    for (size_t m = 0; m < pb.size(); ++m) {
      const TrainBatch &p = pb[m], &f = fb[m];
      ASSERT_EQ(f.tokens.input_ids.size(0), 1);
      EXPECT_EQ(f.tokens.input_ids.size(1), p.real_tokens) << "no padding";
      EXPECT_EQ(f.real_tokens, p.real_tokens);
      ASSERT_TRUE(f.tokens.cu_seqlens.defined());
      ASSERT_EQ(f.tokens.cu_seqlens.size(0), 5);
      int64_t col = 0, longest = 0;
      for (int64_t r = 0; r < 4; ++r) {  // sample r of the padded batch is segment r of the row
        const int64_t len = p.tokens.input_ids[r].ne(0).sum().item<int64_t>();
        EXPECT_EQ(f.tokens.cu_seqlens[r].item<int32_t>(), col);
        EXPECT_TRUE(f.tokens.input_ids[0].narrow(0, col, len).equal(p.tokens.input_ids[r].narrow(0, 0, len)));
        EXPECT_TRUE(f.tokens.position_ids[0].narrow(0, col, len).equal(at::arange(len, at::kLong)));
        EXPECT_TRUE(f.tokens.segment_ids[0].narrow(0, col, len).eq(r).all().item<bool>());
        col += len, longest = std::max(longest, len);
      }
      EXPECT_EQ(f.tokens.cu_seqlens[4].item<int32_t>(), col);
      EXPECT_EQ(f.tokens.max_seqlen, longest);
      // The same labels are predicted, in the same order, each from the position just before it.
      EXPECT_TRUE(f.loss_targets.equal(p.loss_targets));
      for (const TrainBatch* b : {&p, &f}) {
        EXPECT_TRUE(b->labels.flatten().index_select(0, b->loss_positions + 1).equal(b->loss_targets));
        EXPECT_TRUE(b->loss_targets.ne(-100).all().item<bool>());
      }
      EXPECT_EQ(p.loss_positions.size(0), p.labels.narrow(1, 1, p.labels.size(1) - 1).ne(-100).sum().item<int64_t>());
    }
  }
}

TEST(SftBatches, RanksGetDisjointShardsAndOrderIsSeeded) {
  auto ids_of = [](const std::vector<TrainBatch>& batches) {
    std::multiset<std::string> rows;
    for (const auto& b : batches) {
      for (int64_t r = 0; r < b.tokens.input_ids.size(0); ++r) {
        std::string row;
        for (int64_t c = 0; c < b.tokens.input_ids.size(1); ++c) {
          if (int64_t id = b.tokens.input_ids[r][c].item<int64_t>(); id != 0) row += static_cast<char>(id);  // drop padding
        }
        rows.insert(row);
      }
    }
    return rows;
  };
  BatchingOptions o{.batch_size = 2, .seed = 9, .world_size = 2, .gradient_accumulation_steps = 2};
  BatchingOptions o1 = o;
  o1.rank = 1;
  BatchPlan rank0(samples(16), o), rank1(samples(16), o1);
  EXPECT_EQ(rank0.steps_per_epoch(), 2);  // 8 micro-batches / (2 ranks × 2 accumulation)
  EXPECT_EQ(rank0.total_steps(3.0, -1), 6);
  EXPECT_EQ(rank0.total_steps(3.0, 5), 5);
  auto a = ids_of(rank0.micro_batches(0)), b = ids_of(rank1.micro_batches(0));
  for (const auto& row : a) EXPECT_EQ(b.count(row), 0u) << "a sample reached both ranks in one step";
  BatchPlan again(samples(16), o);
  EXPECT_EQ(ids_of(again.micro_batches(1)), ids_of(rank0.micro_batches(1))) << "same seed, same order";
  EXPECT_NE(ids_of(rank0.micro_batches(0)), ids_of(rank0.micro_batches(2))) << "a new epoch reshuffles";
}

// Ranks wait for the slowest at every step: a step's samples are dealt out so that the ranks' token
// counts differ by at most one sample's length, and together they are the samples one process takes
// for that step (same global batch, same update).
TEST(SftBatches, RanksShareAStepsSamplesWithBalancedTokens) {
  std::vector<SftExample> uneven;
  for (int i = 0; i < 48; ++i) {
    uneven.push_back(build_sft_example(chat("p" + std::to_string(i), std::string(1 + (i * 7) % 23, 'r')), bytes, {}));
  }
  auto samples_of = [](const std::vector<TrainBatch>& batches, int64_t& tokens) {
    std::multiset<std::vector<int64_t>> out;
    for (const auto& b : batches) {
      tokens += b.real_tokens;
      for (int64_t r = 0; r < b.tokens.input_ids.size(0); ++r) {
        at::Tensor row = b.tokens.input_ids[r];
        row = row.narrow(0, 0, row.ne(0).sum().item<int64_t>());
        out.insert(std::vector<int64_t>(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel()));
      }
    }
    return out;
  };
  BatchPlan single(uneven, {.batch_size = 2, .seed = 4, .gradient_accumulation_steps = 4});
  std::vector<BatchPlan> ranks;
  for (int64_t r = 0; r < 2; ++r) ranks.emplace_back(uneven, BatchingOptions{.batch_size = 2, .seed = 4, .world_size = 2, .rank = r, .gradient_accumulation_steps = 2});
  int64_t longest = 0;
  for (const auto& e : uneven) longest = std::max<int64_t>(longest, static_cast<int64_t>(e.input_ids.size()));
  // What handing global micro-batch m to rank m % 2 (no dealing) would give, step by step.
  int64_t dealt_imbalance = 0, round_robin_imbalance = 0;
  for (int64_t step = 0; step < single.steps_per_epoch(); ++step) {
    auto mbs = single.micro_batches(step);
    int64_t r0 = 0, r1 = 0;
    for (size_t m = 0; m < mbs.size(); ++m) (m % 2 == 0 ? r0 : r1) += mbs[m].real_tokens;
    round_robin_imbalance += std::abs(r0 - r1);
  }
  for (int64_t step = 0; step < single.steps_per_epoch(); ++step) {
    int64_t t_single = 0, t0 = 0, t1 = 0;
    auto all = samples_of(single.micro_batches(step), t_single);
    auto mb0 = ranks[0].micro_batches(step), mb1 = ranks[1].micro_batches(step);
    ASSERT_EQ(mb0.size(), 2u);
    ASSERT_EQ(mb1.size(), 2u);
    auto s0 = samples_of(mb0, t0), s1 = samples_of(mb1, t1);
    s0.insert(s1.begin(), s1.end());
    EXPECT_EQ(s0, all) << "step " << step << ": the ranks together take the single process's samples";
    EXPECT_LE(std::abs(t0 - t1), longest) << "step " << step << ": tokens per rank " << t0 << " vs " << t1;
    dealt_imbalance += std::abs(t0 - t1);
  }
  EXPECT_LT(dealt_imbalance, round_robin_imbalance) << "dealing evens out the ranks' tokens";
  std::printf("token imbalance between 2 ranks over an epoch: %ld dealt, %ld round robin\n",
              static_cast<long>(dealt_imbalance), static_cast<long>(round_robin_imbalance));
}

// A data-parallel step normalises every rank's loss by the step's labelled positions over all ranks.
// The plan states that total (and the real tokens) on every rank's batches, so no rank has to ask the
// others: it must equal what the ranks' own batches add up to, padded or packed.
TEST(SftBatches, EveryRankKnowsTheStepsTotalsOverAllRanks) {
  std::vector<SftExample> uneven;
  for (int i = 0; i < 150; ++i) {
    uneven.push_back(build_sft_example(chat("q" + std::to_string(i), std::string(1 + (i * 5) % 17, 'a')), bytes, {}));
  }
  for (bool packing : {false, true}) {
    const int64_t world = 3;
    std::vector<BatchPlan> ranks;
    for (int64_t r = 0; r < world; ++r) {
      ranks.emplace_back(uneven, BatchingOptions{.batch_size = 2, .packing = packing, .cutoff_len = 40, .seed = 9,
                                                 .world_size = world, .rank = r, .gradient_accumulation_steps = 2});
    }
    ASSERT_GT(ranks[0].steps_per_epoch(), 1);
    for (int64_t step = 0; step < ranks[0].steps_per_epoch(); ++step) {
      int64_t positions = 0, real = 0;
      std::vector<std::vector<TrainBatch>> per_rank;
      for (const auto& plan : ranks) {
        per_rank.push_back(plan.micro_batches(step));
        for (const auto& b : per_rank.back()) positions += b.loss_positions.size(0), real += b.real_tokens;
      }
      ASSERT_GT(positions, 0);
      for (const auto& batches : per_rank) {
        for (const auto& b : batches) {
          EXPECT_EQ(b.step_loss_tokens, positions) << (packing ? "packed" : "padded") << ", step " << step;
          EXPECT_EQ(b.step_real_tokens, real) << (packing ? "packed" : "padded") << ", step " << step;
        }
      }
    }
  }
}

// cuda_graphs captures its buckets before training from these shapes, so they must be exactly the
// micro-batches' (padding-free length and sample count), on every rank, packed or not, across epochs.
TEST(SftBatches, MicroBatchShapesAreThoseOfTheMicroBatches) {
  std::vector<SftExample> uneven;
  for (int i = 0; i < 40; ++i) {
    uneven.push_back(build_sft_example(chat("p" + std::to_string(i), std::string(1 + (i * 5) % 17, 'r')), bytes, {}));
  }
  for (bool packing : {false, true}) {
    for (int64_t world : {1, 2}) {
      for (int64_t rank = 0; rank < world; ++rank) {
        BatchPlan plan(uneven, {.batch_size = 2, .packing = packing, .padding_free = true, .cutoff_len = 40, .seed = 3,
                                .world_size = world, .rank = rank, .gradient_accumulation_steps = 2});
        for (int64_t step = 0; step < 2 * plan.steps_per_epoch(); ++step) {
          const auto batches = plan.micro_batches(step);
          const auto shapes = plan.micro_batch_shapes(step);
          ASSERT_EQ(shapes.size(), batches.size());
          for (size_t i = 0; i < shapes.size(); ++i) {
            EXPECT_EQ(shapes[i].tokens, batches[i].tokens.input_ids.size(1)) << "step " << step << " rank " << rank;
            EXPECT_EQ(shapes[i].sequences, batches[i].tokens.cu_seqlens.size(0) - 1) << "step " << step << " rank " << rank;
          }
        }
      }
    }
  }
}

TEST(SftBatches, TooFewSamplesForOneStepIsAClearError) {
  BatchingOptions four{.batch_size = 4};
  EXPECT_THROW(BatchPlan(samples(3), four), InputError);
}

}  // namespace
}  // namespace pdsd
