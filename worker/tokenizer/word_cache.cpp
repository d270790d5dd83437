// The two-generation, per-thread word cache (see word_cache.h).
#include "worker/tokenizer/word_cache.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <memory>

namespace pdsd {

uint64_t WordCache::new_owner_key() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1);
}

WordCache& WordCache::for_this_thread(uint64_t key) {
  struct Entry {
    uint64_t key = 0;
    std::unique_ptr<WordCache> cache;
  };
  thread_local std::array<Entry, 4> entries;
  thread_local size_t next_victim = 0;
  for (auto& e : entries)
    if (e.key == key) return *e.cache;
  Entry& e = entries[next_victim];
  next_victim = (next_victim + 1) % entries.size();
  e.key = key;
  e.cache = std::make_unique<WordCache>();
  return *e.cache;
}

const int32_t* WordCache::find(std::string_view word, uint64_t hash, uint32_t& count) {
  if (const int32_t* ids = young().find(word, hash, count)) return ids;
  const int32_t* ids = old().find(word, hash, count);
  if (ids != nullptr && !young().full()) young().insert(word, hash, ids, count);  // `ids` stays valid
  return ids;
}

void WordCache::insert(std::string_view word, uint64_t hash, const int32_t* ids, size_t count) {
  if (word.empty() || word.size() > kMaxWordBytes) return;
  if (young().full()) {
    old().clear();
    young_ ^= 1;
  }
  young().insert(word, hash, ids, count);
}

const int32_t* WordCache::Table::find(std::string_view word, uint64_t hash, uint32_t& count) const {
  for (size_t i = hash & (kSlots - 1);; i = (i + 1) & (kSlots - 1)) {
    const Slot& s = slots_[i];
    if (s.key_len == 0) return nullptr;
    if (s.hash == hash && s.key_len == word.size() &&
        std::memcmp(keys_.data() + s.key_offset, word.data(), word.size()) == 0) {
      count = s.ids_count;
      return ids_.data() + s.ids_offset;
    }
  }
}

void WordCache::Table::insert(std::string_view word, uint64_t hash, const int32_t* ids, size_t count) {
  size_t i = hash & (kSlots - 1);
  while (slots_[i].key_len != 0) i = (i + 1) & (kSlots - 1);
  slots_[i] = Slot{hash, static_cast<uint32_t>(keys_.size()), static_cast<uint32_t>(word.size()),
                   static_cast<uint32_t>(ids_.size()), static_cast<uint32_t>(count)};
  keys_.append(word);
  ids_.insert(ids_.end(), ids, ids + count);
  ++entries_;
}

void WordCache::Table::clear() {
  std::fill(slots_.begin(), slots_.end(), Slot{});
  keys_.clear();
  ids_.clear();
  entries_ = 0;
}

}  // namespace pdsd
