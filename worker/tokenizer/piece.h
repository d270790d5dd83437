// A stretch of the input on its way through the tokenizer pipeline, and the arena that owns the
// text of pieces a step rewrote.
//
// Encoding splits the input on added tokens, normalizes the stretches between them, splits those
// into words (pre-tokenizers) and hands each word to the model. Pieces point into the input where
// they can, so the common path copies no text.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

namespace pdsd {

struct Piece {
  std::string_view text;
  // >= 0: this piece is that added token; no later step touches it.
  int32_t added_token = -1;
  // It begins at byte 0 of the input (what Metaspace's prepend_scheme "first" asks).
  bool at_origin = false;
  // `text` is raw bytes that the ByteLevel pre-tokenizer has yet to map to its characters: the
  // mapping is left to the model (or to the next step that reads the text), which saves a copy.
  bool byte_level = false;
};

// Owns rewritten text; string_views into it stay valid until clear().
class TextArena {
 public:
  std::string_view keep(std::string text) {
    strings_.push_back(std::move(text));
    return strings_.back();
  }
  void clear() { strings_.clear(); }

 private:
  std::deque<std::string> strings_;  // a deque never moves its elements
};

}  // namespace pdsd
