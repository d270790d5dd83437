// The cache of BPE results, word -> ids, that makes most words one hash lookup.
//
// A word's ids never change, and text repeats its words, so the BPE model looks each word up here
// before merging. There is one cache per model per thread (no locks on the hot path): a thread keeps
// caches for a few models at once. Each cache has two generations: new words go to the young one;
// when it fills up it becomes the old one and the old one is dropped; a word found in the old
// generation moves back to the young one. Words seen again stay, words seen once (random strings,
// rare names) age out, without a per-entry recency list.
//
//   WordCache& cache = WordCache::for_this_thread(owner_key);
//   uint64_t h = WordCache::hash(word);
//   if (const int32_t* ids = cache.find(word, h, count)) ... else { merge; cache.insert(word, h, ids, n); }
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pdsd {

class WordCache {
 public:
  static constexpr size_t kMaxWordBytes = 255;  // longer words are rarely repeated: not cached

  // A key that no other cache owner has (BPE models take one each when loaded).
  static uint64_t new_owner_key();
  // This thread's cache for the owner with `key`.
  static WordCache& for_this_thread(uint64_t key);
  static uint64_t hash(std::string_view word) { return std::hash<std::string_view>{}(word); }

  // The `count` cached ids of `word`, or nullptr; valid until the next insert.
  const int32_t* find(std::string_view word, uint64_t hash, uint32_t& count);
  void insert(std::string_view word, uint64_t hash, const int32_t* ids, size_t count);

 private:
  // One generation: open addressing over flat pools, so a hit costs one hash and one compare.
  class Table {
   public:
    static constexpr size_t kSlots = size_t{1} << 16;
    static constexpr size_t kMaxEntries = kSlots / 2;
    Table() : slots_(kSlots) {}
    bool full() const { return entries_ >= kMaxEntries; }
    const int32_t* find(std::string_view word, uint64_t hash, uint32_t& count) const;
    void insert(std::string_view word, uint64_t hash, const int32_t* ids, size_t count);
    void clear();

   private:
    struct Slot {
      uint64_t hash = 0;
      uint32_t key_offset = 0;
      uint32_t key_len = 0;  // 0: an empty slot (empty words are never cached)
      uint32_t ids_offset = 0;
      uint32_t ids_count = 0;
    };
    std::vector<Slot> slots_;
    std::string keys_;
    std::vector<int32_t> ids_;
    size_t entries_ = 0;
  };

  Table& young() { return tables_[young_]; }
  Table& old() { return tables_[young_ ^ 1]; }
  Table tables_[2];
  int young_ = 0;
};

}  // namespace pdsd
