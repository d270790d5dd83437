// The Unicode facts the tokenizer needs, exactly as HF tokenizers has them.
//
// HF tokenizers mixes Unicode versions (its regex engine knows Unicode 16, its NFC tables predate
// Unicode 13), so these tables are not read from a Unicode database but measured on the peer by
// scripts/make_tokenizer_unicode_tables.py into unicode_tables.inc. Here they become quick lookups:
// whitespace and word characters for added tokens, NFC / NFD, and the class extensions the regex
// translation (regex.cpp) adds to PCRE2's older Unicode classes.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace pdsd::unicode {

struct CodePointRange {
  char32_t first;
  char32_t last;
};

// Whitespace that an added token with lstrip / rstrip absorbs (Rust regex \s).
bool is_strip_space(char32_t cp);
// A word character for an added token's single_word check (Rust regex \w).
bool is_word_char(char32_t cp);

// Canonical compositions and decompositions of `text` (valid UTF-8) into `out`. Each returns false
// when the text is already in that form (the common case, found without allocating); `out` is
// then scratch.
bool nfc(std::string_view text, std::string& out);
bool nfd(std::string_view text, std::string& out);

// What HF's regex classes match beyond PCRE2's (Unicode 14) \p{L} and \p{N}, and HF's \s.
std::span<const CodePointRange> regex_letter_extra();
std::span<const CodePointRange> regex_number_extra();
std::span<const CodePointRange> regex_white_space();

}  // namespace pdsd::unicode
