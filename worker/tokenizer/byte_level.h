// GPT-2's byte-level alphabet: every byte has a printable character standing for it, so a
// vocabulary of strings covers any byte sequence. Printable ASCII and most of Latin-1 stand for
// themselves; the other 68 bytes map to U+0100 onwards in byte order (space 0x20 becomes "Ġ",
// newline 0x0A "Ċ"). Qwen2 and Llama 3 vocabularies are written in these characters.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace pdsd::byte_level {

// The character standing for byte b.
char32_t char_of(unsigned char b);
// The UTF-8 of char_of(b), for each byte.
const std::array<std::string, 256>& utf8_of_bytes();
// The byte a character stands for, or -1 when it stands for none.
int byte_of(char32_t c);

// `bytes` written in the alphabet (appended to `out`).
void map_bytes(std::string_view bytes, std::string& out);

}  // namespace pdsd::byte_level
