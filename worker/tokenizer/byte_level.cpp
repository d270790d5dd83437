// The byte-level alphabet (see byte_level.h).
#include "worker/tokenizer/byte_level.h"

#include "worker/tokenizer/utf8.h"

namespace pdsd::byte_level {
namespace {

struct Alphabet {
  std::array<char32_t, 256> chars{};
  std::array<std::string, 256> utf8;
  std::array<int, 512> bytes{};  // every character of the alphabet is below U+0200
};

const Alphabet& alphabet() {
  static const Alphabet a = [] {
    Alphabet a;
    a.bytes.fill(-1);
    char32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      bool self = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      a.chars[b] = self ? static_cast<char32_t>(b) : next++;
      a.utf8[b] = utf8::encode(a.chars[b]);
      a.bytes[a.chars[b]] = b;
    }
    return a;
  }();
  return a;
}

}  // namespace

char32_t char_of(unsigned char b) { return alphabet().chars[b]; }

const std::array<std::string, 256>& utf8_of_bytes() { return alphabet().utf8; }

int byte_of(char32_t c) { return c < 512 ? alphabet().bytes[c] : -1; }

void map_bytes(std::string_view bytes, std::string& out) {
  const auto& table = alphabet().utf8;
  for (char b : bytes) out += table[static_cast<unsigned char>(b)];
}

}  // namespace pdsd::byte_level
