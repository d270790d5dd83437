// A pattern of tokenizer.json — {"String": "..."} or {"Regex": "..."} — and its matches.
//
// HF tokenizers runs regexes with Oniguruma. pdsd runs them with PCRE2 (UTF + UCP, JIT-compiled)
// after translating the pattern: the constructs the two engines read differently are rewritten
// (\s, \p{L} and \p{N} become explicit classes with HF's Unicode 16 data, \h and \v keep
// Oniguruma's meaning, (?m) becomes (?s), {,n} becomes {0,n}), and the constructs pdsd does not
// translate (\d, \w, \b, back-references, other \p{...}, nested classes, ...) are an InputError
// naming the file and the JSON path, never a silent difference. Matches are found the way HF's
// find_iter finds them, empty matches included.
//
//   Pattern p = Pattern::from_json(field);            // field: the {"Regex": ...} object
//   std::vector<Pattern::Match> m;
//   p.find_all("Hello world", m);                      // m: {0,5}, {5,11} for the Qwen2 regex
//
// A Pattern is immutable and safe to use from several threads at once.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pdsd {

class JsonField;

class Pattern {
 public:
  struct Match {
    size_t start;
    size_t end;
  };

  // From a {"String": s} or {"Regex": r} node.
  static Pattern from_json(const JsonField& pattern);
  // An HF regex; `where` names the JSON field it came from, for errors.
  static Pattern regex(std::string_view hf_regex, const JsonField& where);
  static Pattern literal(std::string_view text, const JsonField& where);

  // Every non-overlapping match in `text` (valid UTF-8), left to right, appended to `out`.
  void find_all(std::string_view text, std::vector<Match>& out) const;

  // The PCRE2 pattern an HF regex becomes; throws InputError via `where` when it cannot.
  static std::string translate(std::string_view hf_regex, const JsonField& where);

 private:
  struct Compiled;
  std::shared_ptr<const Compiled> regex_;
  std::string literal_;
};

}  // namespace pdsd
