// NFC, NFD, Prepend, Replace and Sequence normalizers (see normalizer.h).
#include "worker/tokenizer/normalizer.h"

#include <vector>

#include "worker/tokenizer/json_field.h"
#include "worker/tokenizer/pattern.h"
#include "worker/tokenizer/unicode.h"

namespace pdsd {
namespace {

class NfcNormalizer final : public Normalizer {
 public:
  bool normalize(std::string_view text, std::string& out) const override { return unicode::nfc(text, out); }
};

class NfdNormalizer final : public Normalizer {
 public:
  bool normalize(std::string_view text, std::string& out) const override { return unicode::nfd(text, out); }
};

// Prepends a string to any non-empty text (Llama 2's "▁" before the first word).
class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  bool normalize(std::string_view text, std::string& out) const override {
    if (text.empty() || prefix_.empty()) return false;
    out.clear();
    out.reserve(prefix_.size() + text.size());
    out.append(prefix_).append(text);
    return true;
  }

 private:
  std::string prefix_;
};

// Replaces every match of a pattern by a fixed content (Llama 2's spaces become "▁").
class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(Pattern pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  bool normalize(std::string_view text, std::string& out) const override {
    thread_local std::vector<Pattern::Match> matches;
    matches.clear();
    pattern_.find_all(text, matches);
    if (matches.empty()) return false;
    out.clear();
    out.reserve(text.size() + matches.size() * content_.size());
    size_t last = 0;
    for (const auto& m : matches) {
      out.append(text.substr(last, m.start - last)).append(content_);
      last = m.end;
    }
    out.append(text.substr(last));
    return out != text;
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  bool normalize(std::string_view text, std::string& out) const override {
    std::string current, next;
    bool changed = false;
    for (const auto& step : steps_) {
      if (step->normalize(changed ? std::string_view(current) : text, next)) {
        current.swap(next);
        changed = true;
      }
    }
    if (!changed || current == text) return false;
    out = std::move(current);
    return true;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

}  // namespace

std::unique_ptr<Normalizer> Normalizer::from_json(const JsonField& node) {
  std::string type = node.type();
  if (type == "NFC") return std::make_unique<NfcNormalizer>();
  if (type == "NFD") return std::make_unique<NfdNormalizer>();
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(node.at("prepend").as_string());
  if (type == "Replace")
    return std::make_unique<ReplaceNormalizer>(Pattern::from_json(node.at("pattern")), node.at("content").as_string());
  if (type == "Sequence") {
    JsonField list = node.at("normalizers");
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (size_t i = 0; i < list.size(); ++i) steps.push_back(from_json(list[i]));
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  node.unsupported_type("supported normalizers: NFC, NFD, Prepend, Replace, Sequence");
}

std::string normalized(const Normalizer* normalizer, std::string_view text) {
  std::string out;
  if (normalizer != nullptr && normalizer->normalize(text, out)) return out;
  return std::string(text);
}

}  // namespace pdsd
