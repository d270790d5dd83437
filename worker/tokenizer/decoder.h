// The "decoder" of tokenizer.json: turns the tokens of an id list back into text.
//
// Supported, as HF tokenizers defines them: ByteLevel (Qwen2, Llama 3: bytes back from GPT-2's
// alphabet, invalid UTF-8 becoming U+FFFD as Rust's from_utf8_lossy does), Replace, ByteFallback
// (<0xNN> tokens back to bytes), Fuse, Strip (Llama 2: Sequence[Replace("▁", " "), ByteFallback,
// Fuse, Strip(" ", 1, 0)]), Metaspace, and Sequence. Others are an InputError naming the JSON path.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace pdsd {

class JsonField;

class Decoder {
 public:
  virtual ~Decoder() = default;

  // One step of HF's decode_chain: rewrites the list of token strings.
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;

  // The decoder a tokenizer.json "decoder" node describes (the node must not be null).
  static std::unique_ptr<Decoder> from_json(const JsonField& node);
};

// The text of `tokens`: the decoder's chain, joined; without a decoder, the tokens joined by spaces.
std::string decode_tokens(const Decoder* decoder, std::vector<std::string> tokens);

}  // namespace pdsd
