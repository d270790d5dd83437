// UTF-8 encoding and decoding, as the tokenizer needs it.
//
// Text reaching the tokenizer is validated once (validate_utf8) and then decoded without checks
// (decode_utf8). The decoder side turns arbitrary bytes back into a string the way Rust's
// String::from_utf8_lossy does, because HF tokenizers' ByteLevel decoder ends with exactly that.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace pdsd::utf8 {

// Length of the UTF-8 sequence that starts with `lead` (1 for a continuation byte: never asked).
inline size_t sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

// Decodes the code point at text[pos] of valid UTF-8 and advances pos past it.
inline char32_t decode(std::string_view text, size_t& pos) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data()) + pos;
  unsigned char c = s[0];
  if (c < 0x80) {
    pos += 1;
    return c;
  }
  if (c < 0xE0) {
    pos += 2;
    return (char32_t(c & 0x1F) << 6) | (s[1] & 0x3F);
  }
  if (c < 0xF0) {
    pos += 3;
    return (char32_t(c & 0x0F) << 12) | (char32_t(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
  }
  pos += 4;
  return (char32_t(c & 0x07) << 18) | (char32_t(s[1] & 0x3F) << 12) | (char32_t(s[2] & 0x3F) << 6) |
         (s[3] & 0x3F);
}

// The code point that ends at text[end) of valid UTF-8 (end > 0).
inline char32_t decode_before(std::string_view text, size_t end) {
  size_t start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  return decode(text, start);
}

inline void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

inline std::string encode(char32_t cp) {
  std::string out;
  append(out, cp);
  return out;
}

// Length of the longest prefix of `bytes` (at most 4) that starts a well-formed UTF-8 sequence
// (the "maximal subpart" of Unicode's replacement practice); 0 if bytes[0] cannot start one.
// Sets `complete` when that prefix is a whole code point.
size_t valid_prefix(std::string_view bytes, bool& complete);

// Byte offset of the first ill-formed sequence, or npos when `text` is valid UTF-8.
size_t first_invalid(std::string_view text);

// Rust's String::from_utf8_lossy: each maximal ill-formed subpart becomes one U+FFFD.
std::string from_bytes_lossy(std::string_view bytes);

}  // namespace pdsd::utf8
