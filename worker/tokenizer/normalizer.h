// The "normalizer" of tokenizer.json: rewrites text before it is split into words.
//
// Supported, as HF tokenizers defines them: NFC (Qwen2), NFD, Prepend and Replace (Llama 2:
// Sequence[Prepend("▁"), Replace(" ", "▁")]), and Sequence. HF normalizes each stretch of text
// between added tokens on its own, and also the content of added tokens marked "normalized", so a
// Normalizer is a pure function of one string. Anything else is an InputError naming the JSON path.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace pdsd {

class JsonField;

class Normalizer {
 public:
  virtual ~Normalizer() = default;

  // Writes the normalized `text` to `out` and returns true, or returns false when normalizing
  // leaves `text` as it is (`out` is then scratch).
  virtual bool normalize(std::string_view text, std::string& out) const = 0;

  // The normalizer a tokenizer.json "normalizer" node describes (the node must not be null).
  static std::unique_ptr<Normalizer> from_json(const JsonField& node);
};

// `text` normalized by `normalizer` (which may be null: no normalizer).
std::string normalized(const Normalizer* normalizer, std::string_view text);

}  // namespace pdsd
