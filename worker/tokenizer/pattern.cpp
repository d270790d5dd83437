// Literal and regex patterns; the Oniguruma-to-PCRE2 translation and HF's find_iter (see pattern.h).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "worker/tokenizer/pattern.h"

#include <pcre2.h>

#include <algorithm>
#include <cctype>

#include "common/error.h"
#include "worker/tokenizer/json_field.h"
#include "worker/tokenizer/unicode.h"
#include "worker/tokenizer/utf8.h"

namespace pdsd {

struct Pattern::Compiled {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Compiled() { pcre2_code_free(code); }
};

namespace {

std::string class_items(std::span<const unicode::CodePointRange> ranges) {
  std::string out;
  for (auto r : ranges) {
    out += str("\\x{", std::hex, static_cast<uint32_t>(r.first), "}");
    if (r.last != r.first) out += str("-\\x{", std::hex, static_cast<uint32_t>(r.last), "}");
  }
  return out;
}

// The items, usable inside [...], that match what HF's class does.
std::string letter_items() { return "\\p{L}" + class_items(unicode::regex_letter_extra()); }
std::string number_items() { return "\\p{N}" + class_items(unicode::regex_number_extra()); }
std::string space_items() { return class_items(unicode::regex_white_space()); }

class Translator {
 public:
  Translator(std::string_view p, const JsonField& where) : p_(p), where_(where) {}

  std::string run() {
    while (i_ < p_.size()) {
      char c = p_[i_];
      if (c == '\\') {
        escape();
      } else if (in_class_) {
        class_char();
      } else if (c == '[') {
        open_class();
      } else if (c == '(' && peek(1) == '?') {
        group();
      } else if (c == '{' && peek(1) == ',') {
        out_ += "{0";  // Oniguruma reads {,n} as {0,n}; PCRE2 10.42 as a literal
        ++i_;
      } else {
        out_ += c;
        ++i_;
      }
    }
    if (in_class_) fail("has a [ without its closing ]");
    return out_;
  }

 private:
  char peek(size_t k) const { return i_ + k < p_.size() ? p_[i_ + k] : '\0'; }

  [[noreturn]] void fail(std::string_view why) const {
    where_.fail(str(why, " (in the regex ", nlohmann::json(std::string(p_)).dump(), ")"));
  }
  [[noreturn]] void unsupported(std::string_view construct) const {
    fail(str("uses ", construct, ", which pdsd's regex translation does not support (supported: literals, "
             "classes [...], groups, lookaround, quantifiers, \\p{L}, \\p{N}, \\s, \\S)"));
  }

  void open_class() {
    in_class_ = true;
    out_ += '[';
    ++i_;
    if (peek(0) == '^') {
      out_ += '^';
      ++i_;
    }
    if (peek(0) == ']') {  // a ] first in a class is a literal in both engines
      out_ += "\\]";
      ++i_;
    }
  }

  void class_char() {
    char c = p_[i_];
    if (c == ']') {
      in_class_ = false;
    } else if (c == '[') {
      unsupported("a nested class or a POSIX bracket [[...]]");
    } else if (c == '&' && peek(1) == '&') {
      unsupported("a class intersection &&");
    }
    out_ += c;
    ++i_;
  }

  // (?...) constructs: groups and lookaround pass; inline options are translated.
  void group() {
    char k = peek(2);
    if (k == ':' || k == '=' || k == '!' || k == '>' || k == '#') {
      out_ += p_.substr(i_, 3);
      i_ += 3;
      return;
    }
    if (k == '<') {  // lookbehind or a named group
      out_ += p_.substr(i_, 3);
      i_ += 3;
      return;
    }
    // Inline options (?imx-imx) or (?imx-imx:...). Oniguruma's m is "dot matches newline": PCRE2's s.
    std::string opts = "(?";
    size_t j = i_ + 2;
    for (; j < p_.size() && p_[j] != ')' && p_[j] != ':'; ++j) {
      char o = p_[j];
      if (o == 'i' || o == 'x' || o == '-') {
        opts += o;
      } else if (o == 'm') {
        opts += 's';
      } else {
        unsupported(str("the group (?", o));
      }
    }
    if (j >= p_.size()) fail("has an unterminated (? group");
    opts += p_[j];
    out_ += opts;
    i_ = j + 1;
  }

  void escape() {
    char e = peek(1);
    if (e == '\0') fail("ends with a backslash");
    switch (e) {
      case 'p':
      case 'P': {
        size_t j = i_ + 2;
        std::string name;
        if (peek(2) == '{') {
          size_t close = p_.find('}', j);
          if (close == std::string_view::npos) fail("has an unterminated \\p{");
          name = std::string(p_.substr(j + 1, close - j - 1));
          j = close + 1;
        } else {
          name = std::string(1, peek(2));
          j = i_ + 3;
        }
        bool negated = e == 'P';
        if (!name.empty() && name[0] == '^') {
          negated = !negated;
          name.erase(0, 1);
        }
        std::string items;
        if (name == "L") {
          items = letter_items();
        } else if (name == "N") {
          items = number_items();
        } else {
          unsupported(str("the property \\", e, "{", name, "}"));
        }
        add_class(items, negated, str("\\", e, "{", name, "}"));
        i_ = j;
        return;
      }
      case 's':
      case 'S':
        add_class(space_items(), e == 'S', str("\\", e));
        i_ += 2;
        return;
      case 'h':
      case 'H':  // Oniguruma: a hexadecimal digit (PCRE2: horizontal space)
        add_class("0-9a-fA-F", e == 'H', str("\\", e));
        i_ += 2;
        return;
      case 'v':  // Oniguruma: the vertical tab (PCRE2: any vertical space)
        out_ += "\\x0b";
        i_ += 2;
        return;
      case 'u': {  // Oniguruma \uHHHH
        std::string_view hex = p_.substr(i_ + 2, 4);
        if (hex.size() != 4 || !std::all_of(hex.begin(), hex.end(), [](char h) { return std::isxdigit(h); }))
          fail("has a \\u not followed by four hexadecimal digits");
        out_ += str("\\x{", hex, "}");
        i_ += 6;
        return;
      }
      case 'd': case 'D': case 'w': case 'W': case 'b': case 'B': case 'A': case 'z': case 'Z':
      case 'G': case 'K': case 'R': case 'X': case 'N': case 'O': case 'k': case 'g': case 'c':
      case 'C': case 'Q': case 'E': case 'o': case 'y': case 'Y':
      case '1': case '2': case '3': case '4': case '5': case '6': case '7': case '8': case '9':
        unsupported(str("\\", e));
      default: {
        // \t \n \r \f \a \e \0 \xHH \x{...} and escaped punctuation or characters mean the same.
        size_t len = utf8::sequence_length(static_cast<unsigned char>(e));
        out_ += p_.substr(i_, 1 + len);
        i_ += 1 + len;
        return;
      }
    }
  }

  void add_class(const std::string& items, bool negated, std::string_view what) {
    if (!in_class_) {
      out_ += negated ? "[^" : "[";
      out_ += items;
      out_ += ']';
    } else if (!negated) {
      out_ += items;
    } else {
      unsupported(str(what, " inside [...]"));
    }
  }

  std::string_view p_;
  const JsonField& where_;
  size_t i_ = 0;
  bool in_class_ = false;
  std::string out_;
};

// Per-thread PCRE2 matching state: match data, and a JIT stack larger than the default 32 KiB.
struct MatchState {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
  MatchState() { pcre2_jit_stack_assign(context, nullptr, stack); }
  ~MatchState() {
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
};

}  // namespace

std::string Pattern::translate(std::string_view hf_regex, const JsonField& where) {
  return Translator(hf_regex, where).run();
}

Pattern Pattern::regex(std::string_view hf_regex, const JsonField& where) {
  std::string translated = translate(hf_regex, where);
  auto compiled = std::make_shared<Compiled>();
  pcre2_compile_context* ctx = pcre2_compile_context_create(nullptr);
  pcre2_set_newline(ctx, PCRE2_NEWLINE_LF);
  int err = 0;
  PCRE2_SIZE offset = 0;
  compiled->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                                 PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &err, &offset, ctx);
  pcre2_compile_context_free(ctx);
  if (compiled->code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(err, message, sizeof(message));
    where.fail(str("is not a regex pdsd can compile (", reinterpret_cast<const char*>(message), "; the regex ",
                   nlohmann::json(std::string(hf_regex)).dump(), ")"));
  }
  compiled->jit = pcre2_jit_compile(compiled->code, PCRE2_JIT_COMPLETE) == 0;
  Pattern p;
  p.regex_ = std::move(compiled);
  return p;
}

Pattern Pattern::literal(std::string_view text, const JsonField& where) {
  if (text.empty()) where.fail("is an empty string, which would match everywhere");
  Pattern p;
  p.literal_ = std::string(text);
  return p;
}

Pattern Pattern::from_json(const JsonField& pattern) {
  if (auto s = pattern.find("String")) return literal(s->as_string(), *s);
  if (auto r = pattern.find("Regex")) return regex(r->as_string(), *r);
  pattern.fail("must be {\"String\": ...} or {\"Regex\": ...}");
}

void Pattern::find_all(std::string_view text, std::vector<Match>& out) const {
  if (!regex_) {
    for (size_t pos = text.find(literal_); pos != std::string_view::npos;
         pos = text.find(literal_, pos + literal_.size()))
      out.push_back({pos, pos + literal_.size()});
    return;
  }
  thread_local MatchState state;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  // As Oniguruma's find_iter: an empty match right where the previous match ended is skipped by
  // moving one character on.
  size_t from = 0;
  bool have_last = false;
  size_t last_end = 0;
  while (from <= text.size()) {
    int rc = regex_->jit ? pcre2_jit_match(regex_->code, subject, text.size(), from, PCRE2_NO_UTF_CHECK,
                                           state.data, state.context)
                         : pcre2_match(regex_->code, subject, text.size(), from, PCRE2_NO_UTF_CHECK,
                                       state.data, state.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      throw Error(str("tokenizer regex failed on a text of ", text.size(), " bytes: ",
                      reinterpret_cast<const char*>(message)));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(state.data);
    size_t start = ov[0], end = ov[1];
    if (start == end && have_last && last_end == end) {
      from += from < text.size() ? utf8::sequence_length(static_cast<unsigned char>(text[from])) : 1;
      continue;
    }
    out.push_back({start, end});
    from = end;
    have_last = true;
    last_end = end;
  }
}

}  // namespace pdsd
