// BPE: loading vocab and merges, cutting long words, and the merge loop (see bpe_model.h).
#include "worker/tokenizer/bpe_model.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>

#include "common/error.h"
#include "worker/tokenizer/byte_level.h"
#include "worker/tokenizer/json_field.h"
#include "worker/tokenizer/utf8.h"
#include "worker/tokenizer/word_cache.h"

namespace pdsd {
namespace {

struct Symbol {
  int32_t id;
  int32_t prev;
  int32_t next;
  bool removed;
};

// The merge queue: a 4-ary min-heap of (rank << 32 | position). Popping yields the lowest rank,
// and among equal ranks the leftmost position, which is HF's order.
class MergeQueue {
 public:
  static uint64_t key(uint32_t rank, uint32_t pos) { return (uint64_t{rank} << 32) | pos; }
  void clear() { heap_.clear(); }
  bool empty() const { return heap_.empty(); }
  void push_unordered(uint64_t k) { heap_.push_back(k); }
  void heapify() {
    for (size_t i = heap_.size(); i-- > 0;) sift_down(i);
  }
  void push(uint64_t k) {
    size_t i = heap_.size();
    heap_.push_back(k);
    while (i > 0) {
      size_t parent = (i - 1) / 4;
      if (heap_[parent] <= k) break;
      heap_[i] = heap_[parent];
      i = parent;
    }
    heap_[i] = k;
  }
  uint64_t pop() {
    uint64_t top = heap_[0];
    heap_[0] = heap_.back();
    heap_.pop_back();
    if (!heap_.empty()) sift_down(0);
    return top;
  }

 private:
  void sift_down(size_t i) {
    uint64_t k = heap_[i];
    size_t n = heap_.size();
    for (;;) {
      size_t first = 4 * i + 1;
      if (first >= n) break;
      size_t best = first;
      size_t last = std::min(first + 4, n);
      for (size_t c = first + 1; c < last; ++c)
        if (heap_[c] < heap_[best]) best = c;
      if (heap_[best] >= k) break;
      heap_[i] = heap_[best];
      i = best;
    }
    heap_[i] = k;
  }
  std::vector<uint64_t> heap_;
};

std::string byte_token(unsigned char b) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
  return buf;
}

}  // namespace

void BpeModel::MergeTable::reserve(size_t n) {
  size_t slots = 16;
  shift_ = 60;
  while (slots < 2 * n) {
    slots *= 2;
    --shift_;
  }
  slots_.assign(slots, Slot{});
}

void BpeModel::MergeTable::insert_or_assign(int32_t left, int32_t right, Merge m) {
  uint64_t key = (uint64_t(uint32_t(left)) << 32) | uint32_t(right);
  size_t mask = slots_.size() - 1;
  for (size_t i = index(key);; i = (i + 1) & mask) {
    if (slots_[i].key == kEmpty || slots_[i].key == key) {
      slots_[i] = Slot{key, m};
      return;
    }
  }
}

const BpeModel::MergeTable::Merge* BpeModel::MergeTable::find(int32_t left, int32_t right) const {
  uint64_t key = (uint64_t(uint32_t(left)) << 32) | uint32_t(right);
  size_t mask = slots_.size() - 1;
  for (size_t i = index(key);; i = (i + 1) & mask) {
    if (slots_[i].key == key) return &slots_[i].merge;
    if (slots_[i].key == kEmpty) return nullptr;
  }
}

BpeModel BpeModel::from_json(const JsonField& model) {
  if (model.type() != "BPE") model.unsupported_type("BPE only");
  BpeModel m;
  m.cache_key_ = WordCache::new_owner_key();

  if (auto dropout = model.find("dropout"); dropout && dropout->as_number() != 0.0)
    dropout->fail("is set: BPE dropout makes encoding random, which pdsd does not support");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (auto f = model.find(key); f && !f->as_string().empty())
      f->fail("is set, which pdsd's BPE does not support (Qwen2 and Llama files leave it null)");
  }
  m.fuse_unk_ = model.bool_or("fuse_unk", false);
  m.byte_fallback_ = model.bool_or("byte_fallback", false);
  m.ignore_merges_ = model.bool_or("ignore_merges", false);

  JsonField vocab = model.at("vocab");
  if (!vocab.is_object()) vocab.fail("must be an object of token: id");
  m.vocab_.reserve(vocab.size());
  int32_t max_id = -1;
  for (const auto& [token, id_json] : vocab.json().items()) {
    JsonField id_field(id_json, str(vocab.path(), "[", nlohmann::json(token).dump(), "]"), vocab.file());
    int64_t id = id_field.as_int();
    if (id < 0 || id > INT32_MAX) id_field.fail(str("is ", id, ", not a token id"));
    m.vocab_.emplace(token, static_cast<int32_t>(id));
    max_id = std::max(max_id, static_cast<int32_t>(id));
  }
  if (max_id >= 0 && static_cast<size_t>(max_id) >= 4 * m.vocab_.size() + 1024)
    vocab.fail(str("has ids up to ", max_id, " for ", m.vocab_.size(), " tokens; pdsd expects dense ids"));
  m.tokens_by_id_.assign(static_cast<size_t>(max_id + 1), nullptr);
  for (const auto& [token, id] : m.vocab_) {
    if (m.tokens_by_id_[id] != nullptr)
      vocab.fail(str("gives id ", id, " to both ", nlohmann::json(*m.tokens_by_id_[id]).dump(), " and ",
                     nlohmann::json(token).dump()));
    m.tokens_by_id_[id] = &token;
  }

  if (auto unk = model.find("unk_token")) {
    std::string token = unk->as_string();
    auto id = m.find(token);
    if (!id) unk->fail(str("is ", nlohmann::json(token).dump(), ", which is not in model.vocab"));
    m.unk_id_ = *id;
  }

  JsonField merges = model.at("merges");
  if (!merges.is_array()) merges.fail("must be an array");
  m.merges_.reserve(merges.size());
  uint32_t rank = 0;
  for (size_t i = 0; i < merges.size(); ++i) {
    JsonField merge = merges[i];
    std::string left, right;
    if (merge.is_string()) {
      std::string line = merge.as_string();
      if (line.starts_with("#version")) continue;  // a merges.txt header, skipped by HF too
      size_t space = line.find(' ');
      if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos)
        merge.fail(str("is ", nlohmann::json(line).dump(), ", not two tokens separated by one space"));
      left = line.substr(0, space);
      right = line.substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2) {
      left = merge[0].as_string();
      right = merge[1].as_string();
    } else {
      merge.fail("must be \"left right\" or [left, right]");
    }
    auto left_id = m.find(left);
    auto right_id = m.find(right);
    for (const auto& [token, id] : {std::pair{&left, left_id}, std::pair{&right, right_id}}) {
      if (!id) merge.fail(str("names ", nlohmann::json(*token).dump(), ", which is not in model.vocab"));
    }
    auto merged_id = m.find(left + right);
    if (!merged_id)
      merge.fail(str("merges into ", nlohmann::json(left + right).dump(), ", which is not in model.vocab"));
    // A pair listed twice keeps its last rank, as HF's map of merges does.
    m.merges_.insert_or_assign(*left_id, *right_id, {rank++, *merged_id});
  }

  m.ascii_ids_.fill(-1);
  for (const auto& [token, id] : m.vocab_) {
    m.note_joins(token);
    if (token.empty() || utf8::first_invalid(token) != std::string::npos) continue;
    size_t pos = 0;
    char32_t c = utf8::decode(token, pos);
    if (pos != token.size()) continue;
    if (c < 0x80) {
      m.ascii_ids_[c] = id;
    } else {
      m.char_ids_.emplace(c, id);
    }
  }
  const auto& byte_chars = byte_level::utf8_of_bytes();
  for (int b = 0; b < 256; ++b) {
    m.byte_char_ids_[b] = m.find(byte_chars[b]).value_or(-1);
    m.byte_fallback_ids_[b] = m.find(byte_token(static_cast<unsigned char>(b))).value_or(-1);
  }
  return m;
}

std::optional<int32_t> BpeModel::find(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

int32_t BpeModel::char_id(std::string_view ch) const {
  if (ch.size() == 1) return ascii_ids_[static_cast<unsigned char>(ch[0]) & 0x7F];
  size_t pos = 0;
  auto it = char_ids_.find(utf8::decode(ch, pos));
  return it == char_ids_.end() ? -1 : it->second;
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const { return find(token); }

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= tokens_by_id_.size()) return nullptr;
  return tokens_by_id_[id];
}

void BpeModel::tokenize(std::string_view word, bool byte_level, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  WordCache& cache = WordCache::for_this_thread(cache_key_);
  uint64_t hash = WordCache::hash(word);
  uint32_t count = 0;
  if (const int32_t* ids = cache.find(word, hash, count)) {
    out.insert(out.end(), ids, ids + count);
    return;
  }
  size_t first = out.size();
  std::optional<int32_t> whole;
  if (ignore_merges_) {
    if (byte_level) {
      thread_local std::string mapped;
      mapped.clear();
      byte_level::map_bytes(word, mapped);
      whole = find(mapped);
    } else {
      whole = find(word);
    }
  }
  if (whole) {
    out.push_back(*whole);
  } else if (word.size() >= kChunkMinBytes) {
    // Chunks are merged without the whole-word check, so they may share the cache only without it.
    merge_in_chunks(word, byte_level, ignore_merges_ ? nullptr : &cache, out);
  } else {
    merge_word(word, byte_level, out);
  }
  cache.insert(word, hash, out.data() + first, out.size() - first);
}

namespace {
uint64_t join_hash(char32_t a, char32_t b) { return (a * 0x9E3779B97F4A7C15ull) ^ ((b + 1) * 0xC2B2AE3D27D4EB4Full); }
constexpr size_t kJoinFilterBits = size_t{1} << 21;
}  // namespace

void BpeModel::note_joins(std::string_view token) {
  if (join_filter_.empty()) join_filter_.assign(kJoinFilterBits / 64, 0);
  if (utf8::first_invalid(token) != std::string::npos) return;
  size_t pos = 0;
  char32_t prev = 0;
  for (bool first = true; pos < token.size(); first = false) {
    char32_t c = utf8::decode(token, pos);
    if (!first) {
      uint64_t h = join_hash(prev, c);
      for (uint64_t bit : {h >> 43, (h >> 13) & (kJoinFilterBits - 1)}) join_filter_[bit / 64] |= uint64_t{1} << (bit % 64);
    }
    prev = c;
  }
}

bool BpeModel::may_join(char32_t a, char32_t b) const {
  uint64_t h = join_hash(a, b);
  for (uint64_t bit : {h >> 43, (h >> 13) & (kJoinFilterBits - 1)})
    if (!(join_filter_[bit / 64] & (uint64_t{1} << (bit % 64)))) return false;
  return true;
}

// A merged symbol is a vocabulary token whose text is the text of the characters it covers, so two
// neighbouring characters that appear one after the other in no vocabulary token are never joined:
// the stretches between such places merge independently, and, being short, mostly hit the cache.
// Characters outside the vocabulary (byte fallback, unk) are never a cut point, as their symbols'
// text is not theirs.
void BpeModel::merge_in_chunks(std::string_view word, bool byte_level, WordCache* cache,
                               std::vector<int32_t>& out) const {
  auto emit = [&](std::string_view chunk) {
    if (cache == nullptr) {
      merge_word(chunk, byte_level, out);
      return;
    }
    uint64_t hash = WordCache::hash(chunk);
    uint32_t count = 0;
    if (const int32_t* ids = cache->find(chunk, hash, count)) {
      out.insert(out.end(), ids, ids + count);
      return;
    }
    size_t first = out.size();
    merge_word(chunk, byte_level, out);
    cache->insert(chunk, hash, out.data() + first, out.size() - first);
  };
  size_t chunk_start = 0;
  char32_t prev = 0;
  bool prev_known = false;
  for (size_t pos = 0; pos < word.size();) {
    size_t start = pos;
    char32_t c;
    bool known;
    if (byte_level) {
      auto b = static_cast<unsigned char>(word[pos++]);
      c = byte_level::char_of(b);
      known = byte_char_ids_[b] >= 0;
    } else {
      c = utf8::decode(word, pos);
      known = char_id(word.substr(start, pos - start)) >= 0;
    }
    if (start > chunk_start && prev_known && known && !may_join(prev, c)) {
      emit(word.substr(chunk_start, start - chunk_start));
      chunk_start = start;
    }
    prev = c;
    prev_known = known;
  }
  emit(word.substr(chunk_start));
}

void BpeModel::merge_word(std::string_view word, bool byte_level, std::vector<int32_t>& out) const {
  thread_local std::vector<Symbol> symbols;
  thread_local MergeQueue queue;
  symbols.clear();
  queue.clear();
  auto add = [&](int32_t id) {
    int32_t n = static_cast<int32_t>(symbols.size());
    if (n > 0) symbols.back().next = n;
    symbols.push_back({id, n - 1, -1, false});
  };

  // The initial symbols: one per character, with HF's rules for characters not in the vocabulary.
  int32_t pending_unk = -1;  // an unknown-token id not added yet (fuse_unk may extend it)
  const auto& byte_chars = byte_level::utf8_of_bytes();
  for (size_t pos = 0; pos < word.size();) {
    std::string_view ch;
    int32_t id;
    if (byte_level) {
      unsigned char b = static_cast<unsigned char>(word[pos++]);
      ch = byte_chars[b];
      id = byte_char_ids_[b];
    } else {
      size_t start = pos;
      pos += utf8::sequence_length(static_cast<unsigned char>(word[pos]));
      ch = word.substr(start, pos - start);
      id = char_id(ch);
    }
    if (id >= 0) {
      if (pending_unk >= 0) add(pending_unk);
      pending_unk = -1;
      add(id);
      continue;
    }
    if (byte_fallback_ && std::all_of(ch.begin(), ch.end(),
                                      [&](char c) { return byte_fallback_ids_[static_cast<unsigned char>(c)] >= 0; })) {
      // HF adds the byte tokens without first flushing a pending unknown token.
      for (char c : ch) add(byte_fallback_ids_[static_cast<unsigned char>(c)]);
      continue;
    }
    if (unk_id_) {
      if (pending_unk >= 0 && !fuse_unk_) add(pending_unk);
      pending_unk = *unk_id_;  // with fuse_unk, consecutive unknown characters stay one token
    }
    // Without an unk_token, HF drops the character.
  }
  if (pending_unk >= 0) add(pending_unk);

  // The merge loop: lowest rank first, then leftmost. A queued entry is stale when the pair now at
  // its position is not the pair it was queued for. HF tells by the merged id, this by the rank;
  // both single out the same entries, since a rank names one pair and a pair whose two symbols
  // still span the same text is the same pair.
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    if (const auto* m = merges_.find(symbols[i].id, symbols[i + 1].id))
      queue.push_unordered(MergeQueue::key(m->rank, static_cast<uint32_t>(i)));
  }
  queue.heapify();
  while (!queue.empty()) {
    uint64_t top = queue.pop();
    auto rank = static_cast<uint32_t>(top >> 32);
    auto pos = static_cast<uint32_t>(top);
    Symbol& left = symbols[pos];
    if (left.removed || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    const auto* now = merges_.find(left.id, right.id);
    if (now == nullptr || now->rank != rank) continue;
    left.id = now->id;
    right.removed = true;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = static_cast<int32_t>(pos);
    if (left.prev >= 0) {
      if (const auto* m = merges_.find(symbols[left.prev].id, left.id))
        queue.push(MergeQueue::key(m->rank, static_cast<uint32_t>(left.prev)));
    }
    if (left.next >= 0) {
      if (const auto* m = merges_.find(left.id, symbols[left.next].id)) queue.push(MergeQueue::key(m->rank, pos));
    }
  }
  for (const Symbol& s : symbols)
    if (!s.removed) out.push_back(s.id);
}

}  // namespace pdsd
