// UTF-8 validation and lossy decoding (see utf8.h).
#include "worker/tokenizer/utf8.h"

#include <cstring>

namespace pdsd::utf8 {

size_t valid_prefix(std::string_view bytes, bool& complete) {
  complete = false;
  if (bytes.empty()) return 0;
  auto b = [&](size_t i) { return static_cast<unsigned char>(bytes[i]); };
  unsigned char lead = b(0);
  if (lead < 0x80) {
    complete = true;
    return 1;
  }
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    need = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    need = 3;
    if (lead == 0xE0) lo = 0xA0;
    if (lead == 0xED) hi = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    need = 4;
    if (lead == 0xF0) lo = 0x90;
    if (lead == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  size_t n = 1;
  for (; n < need && n < bytes.size(); ++n) {
    unsigned char c = b(n);
    if (n == 1 ? (c < lo || c > hi) : (c & 0xC0) != 0x80) return n;
  }
  complete = n == need;
  return n;
}

size_t first_invalid(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    // Eight ASCII bytes at a time: the common case.
    if (pos + 8 <= text.size()) {
      uint64_t word;
      std::memcpy(&word, text.data() + pos, 8);
      if ((word & 0x8080808080808080ull) == 0) {
        pos += 8;
        continue;
      }
    }
    bool complete;
    size_t n = valid_prefix(text.substr(pos, 4), complete);
    if (!complete) return pos;
    pos += n;
  }
  return std::string_view::npos;
}

std::string from_bytes_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t pos = 0;
  while (pos < bytes.size()) {
    bool complete;
    size_t n = valid_prefix(bytes.substr(pos, 4), complete);
    if (complete) {
      out.append(bytes.substr(pos, n));
      pos += n;
    } else {
      out.append("\xEF\xBF\xBD");  // U+FFFD
      pos += n == 0 ? 1 : n;
    }
  }
  return out;
}

}  // namespace pdsd::utf8
