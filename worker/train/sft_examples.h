// Conversations → token ids and labels for supervised fine-tuning, the way LLaMA-Factory builds them:
// the chat template's segments are grouped into (prompt, response) pairs; each pair is tokenized,
// truncated to the remaining cutoff_len budget by LLaMA-Factory's rule (infer_seqlen: the response
// keeps up to its share, the prompt the rest), and the prompt's labels are -100 unless
// train_on_prompt. Then samples become batches: padded to the longest in the batch, or packed into
// rows of cutoff_len with positions restarting and attention kept inside each sample.
//
//   auto encode = [&](std::string_view s) { return tokenizer.encode(s); };
//   SftExample e = build_sft_example(chat_template.segments(conv), encode, {.cutoff_len = 2048});
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>
#include <utility>
#include <vector>

#include "worker/data/chat_template.h"

namespace pdsd {

struct SftExample {
  std::vector<int32_t> input_ids;
  std::vector<int32_t> labels;  // -100 where no loss
};

struct SftExampleOptions {
  int64_t cutoff_len = 2048;
  bool train_on_prompt = false;
  int32_t eos_id = -1;             // appended to the last response when the template asks for it
  bool append_eos = false;
};

using EncodeFn = std::function<std::vector<int32_t>(std::string_view)>;

// LLaMA-Factory's budget split for one pair: returns {prompt tokens kept, response tokens kept}.
std::pair<int64_t, int64_t> infer_seqlen(int64_t source_len, int64_t target_len, int64_t cutoff_len);

SftExample build_sft_example(const std::vector<data::Segment>& segments, const EncodeFn& encode,
                             const SftExampleOptions& options);

// Training order and batching (batch_plan.h): an epoch's samples are shuffled with seed + epoch, cut
// into batches (padded or packed), and micro-batch i of the job goes to rank i % world_size.
struct BatchingOptions {
  int64_t batch_size = 1;       // samples (padded) or rows (packed) per micro-batch
  bool packing = false;
  // Each micro-batch's samples (or packed rows) laid end to end as one row with no padding, for
  // variable-length flash attention (TokenBatch::cu_seqlens). Same samples, same loss as padded.
  bool padding_free = false;
  int64_t cutoff_len = 2048;    // row length when packing
  uint64_t seed = 42;
  int64_t world_size = 1;
  int64_t rank = 0;
  int64_t gradient_accumulation_steps = 1;
  int32_t pad_id = 0;
};

}  // namespace pdsd
