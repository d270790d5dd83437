// Split, ByteLevel, Metaspace and Sequence pre-tokenizers (see pre_tokenizer.h).
#include "worker/tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <optional>
#include <string>

#include "common/error.h"

#include "worker/tokenizer/byte_level.h"
#include "worker/tokenizer/json_field.h"
#include "worker/tokenizer/pattern.h"
#include "worker/tokenizer/utf8.h"

namespace pdsd {
namespace {

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

SplitBehavior behavior_from_json(const JsonField& node) {
  std::string b = node.as_string();
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  node.fail(str("\"", b, "\" is not a split behavior (Removed, Isolated, MergedWithPrevious, MergedWithNext, "
                "Contiguous)"));
}

struct Span {
  size_t start;
  size_t end;
  bool flag;  // before applying the behavior: "is a match"; after: "is removed"
};

// Splits `piece` at `matches` the way HF's NormalizedString::split does with `behavior`.
void split_at_matches(const Piece& piece, const std::vector<Pattern::Match>& matches, SplitBehavior behavior,
                      bool invert, std::vector<Piece>& out) {
  thread_local std::vector<Span> spans, merged;
  spans.clear();
  merged.clear();
  std::string_view text = piece.text;
  // The matches and the stretches between them (Pattern::find_matches in HF).
  size_t prev = 0;
  for (const auto& m : matches) {
    if (prev != m.start) spans.push_back({prev, m.start, false});
    spans.push_back({m.start, m.end, true});
    prev = m.end;
  }
  if (prev != text.size() || text.empty()) spans.push_back({prev, text.size(), false});
  if (invert)
    for (auto& s : spans) s.flag = !s.flag;

  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (auto s : spans) merged.push_back({s.start, s.end, false});
      break;
    case SplitBehavior::kRemoved:
      merged = spans;
      break;
    case SplitBehavior::kContiguous:
      for (auto s : spans) {
        if (s.flag == previous_match && !merged.empty()) {
          merged.back().end = s.end;
        } else {
          merged.push_back({s.start, s.end, false});
        }
        previous_match = s.flag;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (auto s : spans) {
        if (s.flag && !previous_match && !merged.empty()) {
          merged.back().end = s.end;
        } else {
          merged.push_back({s.start, s.end, false});
        }
        previous_match = s.flag;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->flag && !previous_match && !merged.empty()) {
          merged.back().start = it->start;
        } else {
          merged.push_back({it->start, it->end, false});
        }
        previous_match = it->flag;
      }
      std::reverse(merged.begin(), merged.end());
      break;
  }
  for (const auto& s : merged) {
    if (s.flag || s.end == s.start) continue;
    Piece p = piece;
    p.text = text.substr(s.start, s.end - s.start);
    p.at_origin = piece.at_origin && s.start == 0;
    out.push_back(p);
  }
}

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(Pattern pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}

 protected:
  void split(const Piece& piece, std::vector<Piece>& out, TextArena&) const override {
    thread_local std::vector<Pattern::Match> matches;
    matches.clear();
    pattern_.find_all(piece.text, matches);
    split_at_matches(piece, matches, behavior_, invert_, out);
  }

 private:
  Pattern pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

// GPT-2's split, which ByteLevel applies itself when use_regex is set.
constexpr std::string_view kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::optional<Pattern> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}

 protected:
  void split(const Piece& piece, std::vector<Piece>& out, TextArena& arena) const override {
    Piece p = piece;
    if (add_prefix_space_ && !p.text.empty() && p.text[0] != ' ') {
      std::string spaced(1, ' ');
      spaced.append(p.text);
      p.text = arena.keep(std::move(spaced));
    }
    size_t first = out.size();
    if (regex_) {
      thread_local std::vector<Pattern::Match> matches;
      matches.clear();
      regex_->find_all(p.text, matches);
      split_at_matches(p, matches, SplitBehavior::kIsolated, false, out);
    } else {
      out.push_back(p);
    }
    for (size_t i = first; i < out.size(); ++i) out[i].byte_level = true;  // the model maps the bytes
  }

 private:
  bool add_prefix_space_;
  std::optional<Pattern> regex_;
};

enum class PrependScheme { kFirst, kAlways, kNever };

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}

  int metaspace_first_step() const override { return scheme_ == PrependScheme::kFirst ? 0 : -1; }

 protected:
  void split(const Piece& piece, std::vector<Piece>& out, TextArena& arena) const override {
    std::string text;
    text.reserve(piece.text.size() + replacement_.size());
    bool starts = piece.text.substr(0, replacement_.size()) == replacement_ ||
                  (!piece.text.empty() && piece.text[0] == ' ');
    if (!starts && (scheme_ == PrependScheme::kAlways || (scheme_ == PrependScheme::kFirst && piece.at_origin)))
      text += replacement_;
    for (char c : piece.text) {
      if (c == ' ') {
        text += replacement_;
      } else {
        text += c;
      }
    }
    Piece p = piece;
    p.text = arena.keep(std::move(text));
    if (!split_) {
      out.push_back(p);
      return;
    }
    thread_local std::vector<Pattern::Match> matches;
    matches.clear();
    for (size_t pos = p.text.find(replacement_); pos != std::string_view::npos;
         pos = p.text.find(replacement_, pos + replacement_.size()))
      matches.push_back({pos, pos + replacement_.size()});
    split_at_matches(p, matches, SplitBehavior::kMergedWithNext, false, out);
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}

  void pre_tokenize(std::vector<Piece>& pieces, TextArena& arena) const override {
    for (const auto& step : steps_) step->pre_tokenize(pieces, arena);
  }

  int metaspace_first_step() const override {
    for (size_t i = 0; i < steps_.size(); ++i) {
      int at = steps_[i]->metaspace_first_step();
      if (at >= 0) return i == 0 ? at : 1;
    }
    return -1;
  }

 protected:
  void split(const Piece&, std::vector<Piece>&, TextArena&) const override {}  // pre_tokenize does it all

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

}  // namespace

void PreTokenizer::pre_tokenize(std::vector<Piece>& pieces, TextArena& arena) const {
  thread_local std::vector<Piece> out;
  out.clear();
  for (Piece& piece : pieces) {
    if (piece.added_token >= 0) {
      out.push_back(piece);
      continue;
    }
    if (piece.byte_level) {  // a later step reads the text: map the bytes now
      std::string mapped;
      byte_level::map_bytes(piece.text, mapped);
      piece.text = arena.keep(std::move(mapped));
      piece.byte_level = false;
    }
    split(piece, out, arena);
  }
  std::erase_if(out, [](const Piece& p) { return p.text.empty(); });
  pieces.swap(out);
}

std::unique_ptr<PreTokenizer> PreTokenizer::from_json(const JsonField& node) {
  std::string type = node.type();
  if (type == "Split") {
    return std::make_unique<SplitPreTokenizer>(Pattern::from_json(node.at("pattern")),
                                               behavior_from_json(node.at("behavior")), node.bool_or("invert", false));
  }
  if (type == "ByteLevel") {
    std::optional<Pattern> regex;
    if (node.bool_or("use_regex", true)) regex = Pattern::regex(kGpt2Regex, node);
    return std::make_unique<ByteLevelPreTokenizer>(node.bool_or("add_prefix_space", true), std::move(regex));
  }
  if (type == "Metaspace") {
    JsonField replacement = node.at("replacement");
    std::string r = replacement.as_string();
    size_t one = 0;
    if (!r.empty()) utf8::decode(r, one);
    if (r.empty() || one != r.size()) replacement.fail("must be one character");
    PrependScheme scheme = PrependScheme::kAlways;
    if (auto s = node.find("prepend_scheme")) {
      std::string v = s->as_string();
      if (v == "first") {
        scheme = PrependScheme::kFirst;
      } else if (v == "always") {
        scheme = PrependScheme::kAlways;
      } else if (v == "never") {
        scheme = PrependScheme::kNever;
      } else {
        s->fail(str("\"", v, "\" is not a prepend scheme (first, always, never)"));
      }
    }
    if (auto legacy = node.find("add_prefix_space"); legacy && !legacy->as_bool()) {
      // As HF: a missing prepend_scheme means "always", which contradicts add_prefix_space false.
      if (scheme != PrependScheme::kNever) legacy->fail("is false but prepend_scheme is not \"never\"");
    }
    return std::make_unique<MetaspacePreTokenizer>(r, scheme, node.bool_or("split", true));
  }
  if (type == "Sequence") {
    JsonField list = node.at("pretokenizers");
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (size_t i = 0; i < list.size(); ++i) steps.push_back(from_json(list[i]));
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  node.unsupported_type("supported pre-tokenizers: Split, ByteLevel, Metaspace, Sequence");
}

}  // namespace pdsd
