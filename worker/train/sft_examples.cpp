#include "worker/train/sft_examples.h"

#include <algorithm>

#include "common/error.h"
#include "worker/train/causal_lm_loss.h"

namespace pdsd {

std::pair<int64_t, int64_t> infer_seqlen(int64_t source_len, int64_t target_len, int64_t cutoff_len) {
  int64_t max_target;
  if (target_len * 2 < cutoff_len) {  // a short response keeps everything; the prompt is cut
    max_target = cutoff_len;
  } else if (source_len * 2 < cutoff_len) {  // a short prompt keeps everything; the response is cut
    max_target = cutoff_len - source_len;
  } else {  // both long: shares in proportion to their lengths
    max_target = static_cast<int64_t>(static_cast<double>(cutoff_len) *
                                      (static_cast<double>(target_len) / static_cast<double>(source_len + target_len)));
  }
  const int64_t new_target = std::min(max_target, target_len);
  const int64_t max_source = std::max<int64_t>(cutoff_len - new_target, 0);
  return {std::min(max_source, source_len), new_target};
}

SftExample build_sft_example(const std::vector<data::Segment>& segments, const EncodeFn& encode,
                             const SftExampleOptions& options) {
  // Group into (prompt, response) pairs: untrained text up to a response, then the response.
  std::vector<std::pair<std::string, std::string>> pairs;
  bool in_response = false;
  for (const auto& s : segments) {
    if (pairs.empty() || (in_response && !s.trainable)) pairs.emplace_back();
    (s.trainable ? pairs.back().second : pairs.back().first) += s.text;
    in_response = s.trainable;
  }
  SftExample out;
  int64_t total = 0;
  for (size_t i = 0; i < pairs.size(); ++i) {
    if (total >= options.cutoff_len) break;
    std::vector<int32_t> source = encode(pairs[i].first);
    std::vector<int32_t> target = pairs[i].second.empty() ? std::vector<int32_t>{} : encode(pairs[i].second);
    if (options.append_eos && i + 1 == pairs.size() && !target.empty()) target.push_back(options.eos_id);
    auto [source_len, target_len] = infer_seqlen(static_cast<int64_t>(source.size()), static_cast<int64_t>(target.size()),
                                                 options.cutoff_len - total);
    source.resize(source_len);
    target.resize(target_len);
    total += source_len + target_len;
    out.input_ids.insert(out.input_ids.end(), source.begin(), source.end());
    if (options.train_on_prompt) {
      out.labels.insert(out.labels.end(), source.begin(), source.end());
    } else {
      out.labels.insert(out.labels.end(), source.size(), static_cast<int32_t>(kIgnoreIndex));
    }
    out.input_ids.insert(out.input_ids.end(), target.begin(), target.end());
    out.labels.insert(out.labels.end(), target.begin(), target.end());
  }
  return out;
}

}  // namespace pdsd
