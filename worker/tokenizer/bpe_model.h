// The BPE model of tokenizer.json: a word becomes token ids by merging adjacent symbols, lowest
// merge rank first, exactly as HF tokenizers' BPE does (its stale-entry rule included).
//
// Supported fields: vocab, merges (as "a b" strings or as [a, b] pairs), unk_token, fuse_unk,
// byte_fallback (unknown characters become <0xNN> tokens, as Llama 2), ignore_merges (a word that
// is itself in the vocabulary is one token, as Llama 3). A non-zero dropout or a
// continuing_subword_prefix / end_of_word_suffix is an InputError.
//
// Speed: merges live in an open-addressing table keyed by the pair of ids; the merge loop is a
// 4-ary heap ordered by (rank, position), so a word of n symbols costs O(n log n); a long word
// (Llama 2 has no pre-tokenizer: a whole text is one word) is first cut where the vocabulary shows
// that no merge can join; and each thread keeps a cache of the words it has seen (a word's ids
// never change; word_cache.h), which makes most words one hash lookup. The model is immutable and
// safe to share between threads.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pdsd {

class JsonField;
class WordCache;

class BpeModel {
 public:
  // From the "model" node of tokenizer.json.
  static BpeModel from_json(const JsonField& model);

  // Appends the ids of `word` to `out`. With `byte_level`, `word` is raw bytes read in the
  // byte-level alphabet (the ByteLevel pre-tokenizer's mapping, done here to save a copy).
  void tokenize(std::string_view word, bool byte_level, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The token of `id`, or nullptr when the vocabulary has none.
  const std::string* id_to_token(int32_t id) const;
  // Entries in the vocabulary (HF's BPE::get_vocab_size).
  size_t vocab_size() const { return vocab_.size(); }

 private:
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  // (left id, right id) -> (rank, merged id), open addressing with linear probing.
  class MergeTable {
   public:
    struct Merge {
      uint32_t rank;
      int32_t id;
    };
    void reserve(size_t n);
    void insert_or_assign(int32_t left, int32_t right, Merge m);
    const Merge* find(int32_t left, int32_t right) const;

   private:
    struct Slot {
      uint64_t key = kEmpty;
      Merge merge{};
    };
    static constexpr uint64_t kEmpty = ~uint64_t{0};
    size_t index(uint64_t key) const { return (key * 0x9E3779B97F4A7C15ull) >> shift_; }
    std::vector<Slot> slots_;
    int shift_ = 64;
  };

  // Words at least this long are cut where no merge can join (merge_in_chunks).
  static constexpr size_t kChunkMinBytes = 32;

  void merge_word(std::string_view word, bool byte_level, std::vector<int32_t>& out) const;
  void merge_in_chunks(std::string_view word, bool byte_level, WordCache* cache,
                       std::vector<int32_t>& out) const;
  // A Bloom filter of the character pairs that occur inside vocabulary tokens: may_join(a, b) is
  // false only when no token contains a followed by b.
  void note_joins(std::string_view token);
  bool may_join(char32_t a, char32_t b) const;
  std::optional<int32_t> find(std::string_view token) const;
  // The id of the one-character token `ch` (one UTF-8 character), or -1.
  int32_t char_id(std::string_view ch) const;

  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> vocab_;
  std::vector<const std::string*> tokens_by_id_;  // points into vocab_'s keys (stable)
  MergeTable merges_;
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::array<int32_t, 128> ascii_ids_{};          // id of each one-character ASCII token, or -1
  std::unordered_map<char32_t, int32_t> char_ids_;  // id of each other one-character token
  std::array<int32_t, 256> byte_char_ids_{};      // id of each byte's byte-level character, or -1
  std::array<int32_t, 256> byte_fallback_ids_{};  // id of "<0xNN>" for each byte, or -1
  std::vector<uint64_t> join_filter_;             // bits of note_joins / may_join
  uint64_t cache_key_ = 0;                        // identifies this model's per-thread word caches
};

}  // namespace pdsd
