// Lookups over the measured tables of unicode_tables.inc, and NFC / NFD (UAX #15) on top of them.
#include "worker/tokenizer/unicode.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <vector>

#include "worker/tokenizer/utf8.h"

namespace pdsd::unicode {
namespace {

struct CombiningClassEntry {
  char32_t cp;
  uint8_t ccc;
};
struct DecompositionEntry {
  char32_t cp;
  uint16_t offset;
  uint8_t length;
};
struct CompositionEntry {
  char32_t first;
  char32_t second;
  char32_t composite;
};

#include "worker/tokenizer/unicode_tables.inc"

// Hangul syllables compose and decompose by arithmetic (Unicode 3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
                   kSCount = kLCount * kNCount;

enum Flag : uint8_t {
  kStripSpaceFlag = 1,
  kWordCharFlag = 2,
  // NFC may change text containing this character: it is not NFC-stable alone, or it can be the
  // second half of a composition (so it may merge with what precedes it).
  kNfcMaybeFlag = 4,
};

// A two-stage table over all code points: blocks of 256 values, identical blocks shared.
class CodePointTable {
 public:
  explicit CodePointTable(const std::vector<uint8_t>& values) {
    std::map<std::array<uint8_t, 256>, uint16_t> seen;
    index_.resize(0x110000 / 256);
    for (size_t block = 0; block < index_.size(); ++block) {
      std::array<uint8_t, 256> b{};
      std::copy_n(values.begin() + block * 256, 256, b.begin());
      auto [it, inserted] = seen.emplace(b, static_cast<uint16_t>(blocks_.size()));
      if (inserted) blocks_.push_back(b);
      index_[block] = it->second;
    }
  }
  uint8_t operator[](char32_t cp) const {
    if (cp >= 0x110000) return 0;
    return blocks_[index_[cp >> 8]][cp & 0xFF];
  }

 private:
  std::vector<uint16_t> index_;
  std::vector<std::array<uint8_t, 256>> blocks_;
};

struct Tables {
  CodePointTable flags;
  CodePointTable combining_class;
};

const Tables& tables() {
  static const Tables t = [] {
    std::vector<uint8_t> flags(0x110000, 0), ccc(0x110000, 0);
    auto mark = [&](std::span<const CodePointRange> ranges, uint8_t flag) {
      for (auto r : ranges)
        for (char32_t cp = r.first; cp <= r.last; ++cp) flags[cp] |= flag;
    };
    mark(kStripSpace, kStripSpaceFlag);
    mark(kWordChar, kWordCharFlag);
    mark(kNfcChanges, kNfcMaybeFlag);
    for (const auto& c : kComposition) flags[c.second] |= kNfcMaybeFlag;
    for (char32_t cp = kVBase; cp < kVBase + kVCount; ++cp) flags[cp] |= kNfcMaybeFlag;
    for (char32_t cp = kTBase + 1; cp < kTBase + kTCount; ++cp) flags[cp] |= kNfcMaybeFlag;
    for (const auto& e : kCombiningClass) ccc[e.cp] = e.ccc;
    return Tables{CodePointTable(flags), CodePointTable(ccc)};
  }();
  return t;
}

uint8_t combining_class(char32_t cp) { return tables().combining_class[cp]; }

void decompose(char32_t cp, std::vector<char32_t>& out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    char32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out.push_back(kTBase + s % kTCount);
    return;
  }
  const auto* it = std::lower_bound(std::begin(kDecomposition), std::end(kDecomposition), cp,
                                    [](const DecompositionEntry& e, char32_t c) { return e.cp < c; });
  if (it != std::end(kDecomposition) && it->cp == cp) {
    out.insert(out.end(), kDecompositionData + it->offset, kDecompositionData + it->offset + it->length);
  } else {
    out.push_back(cp);
  }
}

// The composite of (first, second), or 0 when they do not compose.
char32_t compose(char32_t first, char32_t second) {
  if (first >= kLBase && first < kLBase + kLCount && second >= kVBase && second < kVBase + kVCount)
    return kSBase + ((first - kLBase) * kVCount + (second - kVBase)) * kTCount;
  if (first >= kSBase && first < kSBase + kSCount && (first - kSBase) % kTCount == 0 && second > kTBase &&
      second < kTBase + kTCount)
    return first + (second - kTBase);
  const auto* it = std::lower_bound(std::begin(kComposition), std::end(kComposition), std::pair{first, second},
                                    [](const CompositionEntry& e, std::pair<char32_t, char32_t> key) {
                                      return std::pair{e.first, e.second} < key;
                                    });
  if (it != std::end(kComposition) && it->first == first && it->second == second) return it->composite;
  return 0;
}

// Full canonical decomposition in canonical order (NFD) of valid UTF-8.
std::vector<char32_t> canonical_decomposition(std::string_view text) {
  std::vector<char32_t> out;
  out.reserve(text.size() + 8);
  for (size_t pos = 0; pos < text.size();) decompose(utf8::decode(text, pos), out);
  // Canonical ordering: a stable sort of each run of non-starters by combining class.
  for (size_t i = 1; i < out.size(); ++i) {
    uint8_t c = combining_class(out[i]);
    if (c == 0) continue;
    size_t j = i;
    while (j > 0) {
      uint8_t p = combining_class(out[j - 1]);
      if (p == 0 || p <= c) break;
      std::swap(out[j - 1], out[j]);
      --j;
    }
  }
  return out;
}

std::string to_utf8(const std::vector<char32_t>& cps) {
  std::string out;
  out.reserve(cps.size() * 2);
  for (char32_t cp : cps) utf8::append(out, cp);
  return out;
}

bool is_ascii(std::string_view text) {
  for (char c : text)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

}  // namespace

bool is_strip_space(char32_t cp) { return tables().flags[cp] & kStripSpaceFlag; }
bool is_word_char(char32_t cp) { return tables().flags[cp] & kWordCharFlag; }

namespace {

// NFC of a stretch that starts at a boundary (see nfc below): decompose, reorder, recompose.
void nfc_segment(std::string_view text, std::string& out) {
  std::vector<char32_t> d = canonical_decomposition(text);
  std::vector<char32_t> r;
  r.reserve(d.size());
  ptrdiff_t starter = -1;  // index in r of the last starter
  uint8_t last_ccc = 0;
  for (char32_t cp : d) {
    uint8_t ccc = combining_class(cp);
    if (starter >= 0) {
      bool adjacent = static_cast<size_t>(starter) + 1 == r.size();
      if (adjacent || (last_ccc != 0 && last_ccc < ccc)) {
        if (char32_t composite = compose(r[starter], cp)) {
          r[starter] = composite;
          continue;
        }
      }
    }
    if (ccc == 0) starter = static_cast<ptrdiff_t>(r.size());
    last_ccc = ccc;
    r.push_back(cp);
  }
  for (char32_t cp : r) utf8::append(out, cp);
}

}  // namespace

bool nfc(std::string_view text, std::string& out) {
  // A boundary is a starter (class 0) that NFC leaves alone and that cannot compose with what
  // precedes it: nothing before it composes or reorders with anything from it on, so NFC works on
  // the stretches between boundaries independently. Text whose characters are all boundaries, or
  // combining marks already in canonical order that compose with nothing, is in NFC; only the
  // stretches around other characters go through decomposition and recomposition.
  const Tables& t = tables();
  size_t copied = 0;          // text[0, copied) is accounted for in `out`
  size_t boundary = 0;        // the last boundary seen
  uint8_t last_ccc = 0;
  bool changed = false;
  for (size_t pos = 0; pos < text.size();) {
    if (static_cast<unsigned char>(text[pos]) < 0x80) {
      boundary = pos++;
      last_ccc = 0;
      continue;
    }
    size_t start = pos;
    char32_t cp = utf8::decode(text, pos);
    uint8_t ccc = t.combining_class[cp];
    bool maybe = t.flags[cp] & kNfcMaybeFlag;
    if (!maybe && (ccc == 0 || ccc >= last_ccc)) {
      if (ccc == 0) boundary = start;
      last_ccc = ccc;
      continue;
    }
    // Normalize from the last boundary to the next one.
    size_t end = pos;
    while (end < text.size()) {
      size_t next = end;
      char32_t c = utf8::decode(text, next);
      if (t.combining_class[c] == 0 && !(t.flags[c] & kNfcMaybeFlag)) break;
      end = next;
    }
    if (!changed) {
      out.clear();
      out.reserve(text.size() + 16);
      changed = true;
    }
    out.append(text.substr(copied, boundary - copied));
    nfc_segment(text.substr(boundary, end - boundary), out);
    copied = end;
    boundary = end;
    pos = end;
    last_ccc = 0;
  }
  if (!changed) return false;
  out.append(text.substr(copied));
  if (out == text) return false;
  return true;
}

bool nfd(std::string_view text, std::string& out) {
  if (is_ascii(text)) return false;
  std::string decomposed = to_utf8(canonical_decomposition(text));
  if (decomposed == text) return false;
  out = std::move(decomposed);
  return true;
}

std::span<const CodePointRange> regex_letter_extra() { return kLetterExtra; }
std::span<const CodePointRange> regex_number_extra() { return kNumberExtra; }
std::span<const CodePointRange> regex_white_space() { return kWhiteSpace; }

}  // namespace pdsd::unicode
