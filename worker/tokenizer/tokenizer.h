// A Hugging Face tokenizer.json, loaded and run in C++ with the ids HF `tokenizers` produces.
//
//   pdsd::Tokenizer tok = pdsd::Tokenizer::from_file("examples/tiny-qwen2/tokenizer.json");
//   std::vector<int32_t> ids = tok.encode("<|im_start|>user\nhi<|im_end|>");
//   std::string text = tok.decode(ids);                       // the text back
//   std::optional<int32_t> eos = tok.token_to_id("<|im_end|>");
//
// What it runs (HF's encode, step by step): the input is cut on added tokens; the rest is
// normalized (normalizer.h), cut on normalized added tokens, split into words (pre_tokenizer.h)
// and each word merged into ids (bpe_model.h); add_special_tokens applies the post-processor
// (post_processor.h). decode maps ids to tokens (skipping special ones if asked) and runs the
// decoder (decoder.h). This covers the byte-level BPE of Qwen2/Qwen2.5 and Llama 3 and the
// SentencePiece-style BPE of Llama 2; anything else in a tokenizer.json is an InputError naming the
// file and the JSON path, never different ids. tests/test_tokenizer_matches_hf.cpp checks the ids
// against HF tokenizers on 10,000+ strings per tokenizer.
//
// Two deliberate differences from calling HF tokenizers directly: "truncation" and "padding" in
// the file are ignored (with a warning), as transformers ignores them unless a call asks for them
// (pdsd cuts to cutoff_len itself); and text to encode must be valid UTF-8 (an InputError otherwise).
//
// A Tokenizer is immutable; copies share the loaded data, and encode/decode may run on several
// threads at once (each thread keeps its own word cache).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pdsd {

class Tokenizer {
 public:
  // Throws InputError naming the file (and the JSON path) when it cannot be loaded as is.
  static Tokenizer from_file(const std::string& tokenizer_json_path);

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = false) const;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(int32_t id) const;
  // Including added tokens, as HF's get_vocab_size(with_added_tokens=True).
  size_t vocab_size() const;

  const std::string& path() const;

 private:
  struct Impl;
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace pdsd
