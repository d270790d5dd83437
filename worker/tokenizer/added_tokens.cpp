// Added tokens: loading with HF's id assignment, matching, and cutting pieces (see added_tokens.h).
#include "worker/tokenizer/added_tokens.h"

#include <algorithm>

#include "common/error.h"
#include "common/log.h"
#include "worker/tokenizer/bpe_model.h"
#include "worker/tokenizer/json_field.h"
#include "worker/tokenizer/normalizer.h"
#include "worker/tokenizer/unicode.h"
#include "worker/tokenizer/utf8.h"

namespace pdsd {

void AddedVocabulary::Matcher::add(std::string_view pattern, int32_t id) {
  int32_t node = 0;
  for (char ch : pattern) {
    auto c = static_cast<unsigned char>(ch);
    auto& children = nodes_[node].children;
    auto it = std::find_if(children.begin(), children.end(), [c](const auto& e) { return e.first == c; });
    if (it != children.end()) {
      node = it->second;
    } else {
      int32_t child = static_cast<int32_t>(nodes_.size());
      nodes_[node].children.emplace_back(c, child);
      nodes_.emplace_back();
      node = child;
    }
  }
  nodes_[node].id = id;
  first_byte_[static_cast<unsigned char>(pattern[0])] = true;
}

bool AddedVocabulary::Matcher::next(std::string_view text, size_t from, size_t& start, size_t& end,
                                    int32_t& id) const {
  if (empty()) return false;
  for (size_t pos = from; pos < text.size(); ++pos) {
    if (!first_byte_[static_cast<unsigned char>(text[pos])]) continue;
    int32_t node = 0;
    size_t best = 0;
    for (size_t j = pos; j < text.size(); ++j) {
      auto c = static_cast<unsigned char>(text[j]);
      const auto& children = nodes_[node].children;
      auto it = std::find_if(children.begin(), children.end(), [c](const auto& e) { return e.first == c; });
      if (it == children.end()) break;
      node = it->second;
      if (nodes_[node].id >= 0) {
        best = j + 1;
        id = nodes_[node].id;
      }
    }
    if (best > 0) {
      start = pos;
      end = best;
      return true;
    }
  }
  return false;
}

AddedVocabulary AddedVocabulary::from_json(const std::optional<JsonField>& added_tokens, const BpeModel& model,
                                           const Normalizer* normalizer) {
  AddedVocabulary v;
  if (!added_tokens) return v;
  if (!added_tokens->is_array()) added_tokens->fail("must be an array");
  // HF adds all the file's tokens in one call: a new content gets the next id after the model's
  // vocabulary (its size, not its largest id), in file order.
  auto next_id = static_cast<int32_t>(model.vocab_size());
  for (size_t i = 0; i < added_tokens->size(); ++i) {
    JsonField entry = (*added_tokens)[i];
    Token t;
    t.content = entry.at("content").as_string();
    t.single_word = entry.bool_or("single_word", false);
    t.lstrip = entry.bool_or("lstrip", false);
    t.rstrip = entry.bool_or("rstrip", false);
    t.normalized = entry.bool_or("normalized", !entry.bool_or("special", false));
    t.special = entry.bool_or("special", false);
    if (t.content.empty()) continue;
    if (utf8::first_invalid(t.content) != std::string::npos) entry.at("content").fail("is not valid UTF-8");

    int32_t id;
    if (auto known = v.ids_.find(t.content); known != v.ids_.end()) {
      id = known->second;
    } else if (auto in_model = model.token_to_id(t.content)) {
      id = *in_model;
    } else {
      id = next_id++;
    }
    if (auto file_id = entry.find("id"); file_id && file_id->as_int() != id)
      log::warn(entry.file(), ": ", entry.path(), " \"", t.content, "\" has id ", file_id->as_int(),
                " in the file, but HF tokenizers (and pdsd) give it id ", id);
    if (t.normalized && normalizer != nullptr) {
      std::string n;
      if (normalizer->normalize(t.content, n) && n != t.content) v.normalized_.emplace(id, std::move(n));
    }
    v.ids_[t.content] = id;
    if (t.special) v.special_.insert(t.content);
    v.tokens_[id] = std::move(t);
  }

  // The patterns: each id's last token, matched by its normalized form when it is normalized.
  std::vector<std::pair<std::string, int32_t>> raw, normalized;
  for (const auto& [id, t] : v.tokens_) {
    if (t.normalized) {
      auto n = v.normalized_.find(id);
      normalized.emplace_back(n != v.normalized_.end() ? n->second : t.content, id);
    } else {
      raw.emplace_back(t.content, id);
    }
  }
  for (auto* list : {&raw, &normalized}) {
    std::sort(list->begin(), list->end());
    for (size_t i = 0; i + 1 < list->size(); ++i) {
      if ((*list)[i].first == (*list)[i + 1].first)
        added_tokens->fail(str("has two tokens that match the same text \"", (*list)[i].first, "\" (ids ",
                               (*list)[i].second, " and ", (*list)[i + 1].second, ")"));
    }
    Matcher& m = list == &raw ? v.raw_matcher_ : v.normalized_matcher_;
    for (const auto& [pattern, id] : *list) m.add(pattern, id);
  }
  for (const auto& [content, id] : v.ids_)
    if (model.token_to_id(content)) ++v.overlap_with_model_;
  return v;
}

std::optional<int32_t> AddedVocabulary::token_to_id(std::string_view content) const {
  auto it = ids_.find(std::string(content));
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

const std::string* AddedVocabulary::id_to_token(int32_t id) const {
  if (auto n = normalized_.find(id); n != normalized_.end()) return &n->second;
  if (auto t = tokens_.find(id); t != tokens_.end()) return &t->second.content;
  return nullptr;
}

void AddedVocabulary::split(std::vector<Piece>& pieces, bool normalized) const {
  const Matcher& matcher = normalized ? normalized_matcher_ : raw_matcher_;
  thread_local std::vector<Piece> out;
  out.clear();
  for (const Piece& piece : pieces) {
    if (piece.added_token >= 0) {
      out.push_back(piece);
    } else if (matcher.empty()) {
      if (!piece.text.empty()) out.push_back(piece);
    } else {
      split_one(piece, matcher, out);
    }
  }
  pieces.swap(out);
}

// HF's AddedVocabulary::find_matches followed by the split: the offsets logic is kept as HF has it,
// including a match whose lstrip reaches back into text an earlier rstrip already took.
void AddedVocabulary::split_one(const Piece& piece, const Matcher& matcher, std::vector<Piece>& out) const {
  std::string_view s = piece.text;
  auto emit = [&](size_t a, size_t b, int32_t id) {
    if (b <= a) return;
    Piece p;
    p.text = s.substr(a, b - a);
    p.added_token = id;
    p.at_origin = piece.at_origin && a == 0;
    out.push_back(p);
  };
  size_t start_offset = 0;
  size_t from = 0, start = 0, stop = 0;
  int32_t id = -1;
  while (matcher.next(s, from, start, stop, id)) {
    from = stop;  // the automaton's matches never overlap, whatever the checks below decide
    const Token& t = tokens_.at(id);
    if (t.single_word) {
      bool start_space = start == 0 || !unicode::is_word_char(utf8::decode_before(s, start));
      size_t after = stop;
      bool stop_space = stop == s.size() || !unicode::is_word_char(utf8::decode(s, after));
      if (!start_space || !stop_space) continue;
    }
    if (t.lstrip) {
      size_t new_start = start;
      while (new_start > 0) {
        size_t before = new_start - 1;
        while (before > 0 && (static_cast<unsigned char>(s[before]) & 0xC0) == 0x80) --before;
        size_t p = before;
        if (!unicode::is_strip_space(utf8::decode(s, p))) break;
        new_start = before;
      }
      start = std::max(new_start, start_offset);
    }
    if (t.rstrip) {
      while (stop < s.size()) {
        size_t p = stop;
        if (!unicode::is_strip_space(utf8::decode(s, p))) break;
        stop = p;
      }
    }
    if (start_offset < start) emit(start_offset, start, -1);
    emit(start, stop, id);
    start_offset = stop;
  }
  if (start_offset < s.size()) emit(start_offset, s.size(), -1);
}

}  // namespace pdsd
