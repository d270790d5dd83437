// The "pre_tokenizer" of tokenizer.json: splits normalized text into the words the model sees.
//
// Supported, as HF tokenizers defines them:
//   Split(pattern, behavior, invert)   — Qwen2 / Llama 3 split with their regex, behavior Isolated;
//                                        all five behaviors are implemented
//   ByteLevel(add_prefix_space, use_regex) — maps bytes to GPT-2's alphabet (with use_regex, it
//                                        first splits with GPT-2's own regex)
//   Metaspace(replacement, prepend_scheme first|always|never, split) — newer Llama 2 files
//   Sequence
// Others are an InputError naming the JSON path.
#pragma once

#include <memory>
#include <vector>

#include "worker/tokenizer/piece.h"

namespace pdsd {

class JsonField;

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;

  // Splits every piece that is not an added token, in place; empty pieces are dropped.
  virtual void pre_tokenize(std::vector<Piece>& pieces, TextArena& arena) const;

  // Where a Metaspace with prepend_scheme "first" is: -1 nowhere, 0 the first step, 1 a later step.
  // Its prepend depends on whether a piece begins at byte 0 of the input, which pdsd tracks exactly
  // only for pieces that no earlier step split (tokenizer.cpp refuses the other combinations).
  virtual int metaspace_first_step() const { return -1; }

  // The pre-tokenizer a tokenizer.json "pre_tokenizer" node describes (the node must not be null).
  static std::unique_ptr<PreTokenizer> from_json(const JsonField& node);

 protected:
  // Appends the pieces `piece` splits into to `out` (those that are empty are dropped by caller).
  virtual void split(const Piece& piece, std::vector<Piece>& out, TextArena& arena) const = 0;
};

}  // namespace pdsd
