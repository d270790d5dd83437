// The "post_processor" of tokenizer.json: what encode(text, add_special_tokens=true) adds around
// the ids (Llama 2: <s> first; Llama 3: <|begin_of_text|> first; Qwen2: nothing).
//
// Supported for a single sequence, as HF tokenizers defines them: TemplateProcessing (its "single"
// template; the ids of each special token come from its "special_tokens" table), ByteLevel (it only
// adjusts offsets, so ids are unchanged) and Sequence. Others are an InputError naming the JSON path.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace pdsd {

class JsonField;

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;

  // Rewrites the ids of one encoded sequence; without add_special_tokens nothing is added.
  virtual void process(std::vector<int32_t>& ids, bool add_special_tokens) const = 0;

  // The post-processor a tokenizer.json "post_processor" node describes (the node must not be null).
  static std::unique_ptr<PostProcessor> from_json(const JsonField& node);
};

}  // namespace pdsd
