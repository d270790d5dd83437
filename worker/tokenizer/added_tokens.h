// The "added_tokens" of tokenizer.json (special tokens such as <|im_start|>, and tokens added on
// top of the model's vocabulary), and how they cut the input.
//
// HF splits the input on added tokens before anything else, so no merge ever crosses one: first on
// the tokens with normalized=false, in the raw text, then — after normalizing what is left — on the
// tokens with normalized=true, in the normalized text. At each position the longest token wins,
// leftmost first; single_word, lstrip and rstrip then refine each match exactly as HF does. Ids
// are assigned as HF assigns them on load (the token's id in the model vocabulary if it has one,
// otherwise the next free id after the vocabulary), which is the file's "id" in any sane file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "worker/tokenizer/piece.h"

namespace pdsd {

class BpeModel;
class JsonField;
class Normalizer;

class AddedVocabulary {
 public:
  // `added_tokens` is the "added_tokens" array, or nullopt when the file has none.
  static AddedVocabulary from_json(const std::optional<JsonField>& added_tokens, const BpeModel& model,
                                   const Normalizer* normalizer);

  // Cuts every piece that is not yet an added token on the matches of the tokens with
  // normalized == `normalized`; matched stretches become added-token pieces, empty ones vanish.
  void split(std::vector<Piece>& pieces, bool normalized) const;

  std::optional<int32_t> token_to_id(std::string_view content) const;
  // The string decoding uses for `id` (the normalized content for a normalized token), or nullptr.
  const std::string* id_to_token(int32_t id) const;
  // Whether `token` is the content of a special token (skipped by decode(..., skip_special_tokens)).
  bool is_special(std::string_view token) const { return special_.contains(std::string(token)); }
  bool has_normalized_tokens() const { return !normalized_matcher_.empty(); }
  // Distinct contents, and those also in the model vocabulary (for HF's get_vocab_size).
  size_t size() const { return ids_.size(); }
  size_t overlap_with_model() const { return overlap_with_model_; }

 private:
  struct Token {
    std::string content;
    bool single_word = false;
    bool lstrip = false;
    bool rstrip = false;
    bool normalized = false;
    bool special = false;
  };

  // Leftmost-longest matching of a set of strings (a byte trie; most bytes fail the root test).
  class Matcher {
   public:
    void add(std::string_view pattern, int32_t id);
    bool empty() const { return nodes_.size() <= 1; }
    // The next match at or after `from`: [start, end) and the id, or false.
    bool next(std::string_view text, size_t from, size_t& start, size_t& end, int32_t& id) const;

   private:
    struct Node {
      std::vector<std::pair<unsigned char, int32_t>> children;
      int32_t id = -1;
    };
    std::vector<Node> nodes_{1};
    bool first_byte_[256] = {};
  };

  void split_one(const Piece& piece, const Matcher& matcher, std::vector<Piece>& out) const;

  std::unordered_map<std::string, int32_t> ids_;          // content -> id
  std::unordered_map<int32_t, Token> tokens_;             // id -> token (the last one added for it)
  std::unordered_map<int32_t, std::string> normalized_;   // id -> normalized content, where it differs
  std::unordered_set<std::string> special_;               // contents of special tokens
  Matcher raw_matcher_;
  Matcher normalized_matcher_;
  size_t overlap_with_model_ = 0;
};

}  // namespace pdsd
