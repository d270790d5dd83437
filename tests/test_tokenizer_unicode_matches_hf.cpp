// The Unicode behaviour under pdsd's tokenizer, code point by code point, against HF tokenizers:
// the regex classes the Qwen2 / Llama 3 regexes use (\p{L}, \p{N}, \s, \S and the classes built
// from them), which pdsd runs on PCRE2 with Unicode 14 data patched to HF's Unicode 16, and NFC /
// NFD of every single character, which pdsd computes from tables measured on HF
// (scripts/make_tokenizer_unicode_tables.py). The peer is asked again here, at test time.
#include <gtest/gtest.h>

#include <set>

#include "common/error.h"
#include "tests/support/tokenizer_peer.h"
#include "worker/tokenizer/json_field.h"
#include "worker/tokenizer/pattern.h"
#include "worker/tokenizer/unicode.h"
#include "worker/tokenizer/utf8.h"

namespace pdsd {
namespace {

std::vector<char32_t> all_code_points() {
  std::vector<char32_t> out;
  for (char32_t cp = 0; cp < 0x110000; ++cp)
    if (cp < 0xD800 || cp >= 0xE000) out.push_back(cp);
  return out;
}

std::string hex(char32_t cp) { return str("U+", std::hex, std::uppercase, static_cast<uint32_t>(cp)); }

void expect_regex_classes(const nlohmann::json& classes) {
  std::string text;  // every code point once
  for (char32_t cp : all_code_points()) utf8::append(text, cp);
  const std::string file = "(test)";
  for (const auto& [regex, ranges] : classes.items()) {
    std::set<char32_t> want;
    for (const auto& r : ranges)
      for (char32_t cp = r[0].get<char32_t>(); cp <= r[1].get<char32_t>(); ++cp) want.insert(cp);
    nlohmann::json holder = regex;
    Pattern p = Pattern::regex(regex, JsonField(holder, "pattern", file));
    std::vector<Pattern::Match> matches;
    p.find_all(text, matches);
    std::set<char32_t> got;
    for (const auto& m : matches) {
      size_t pos = m.start;
      got.insert(utf8::decode(text, pos));
      ASSERT_EQ(pos, m.end) << regex << " matched more than one character at byte " << m.start;
    }
    std::vector<char32_t> only_hf, only_ours;
    std::set_difference(want.begin(), want.end(), got.begin(), got.end(), std::back_inserter(only_hf));
    std::set_difference(got.begin(), got.end(), want.begin(), want.end(), std::back_inserter(only_ours));
    std::string sample;
    for (size_t i = 0; i < only_hf.size() && i < 5; ++i) sample += str(" ", hex(only_hf[i]));
    EXPECT_TRUE(only_hf.empty()) << regex << ": " << only_hf.size() << " code points HF matches and pdsd does not:"
                                 << sample;
    sample.clear();
    for (size_t i = 0; i < only_ours.size() && i < 5; ++i) sample += str(" ", hex(only_ours[i]));
    EXPECT_TRUE(only_ours.empty()) << regex << ": " << only_ours.size()
                                   << " code points pdsd matches and HF does not:" << sample;
  }
}

void expect_per_char(const nlohmann::json& changed, bool (*normalize)(std::string_view, std::string&),
                     const char* name) {
  size_t wrong = 0;
  std::string shown;
  for (char32_t cp : all_code_points()) {
    std::string in = utf8::encode(cp), out;
    std::string ours = normalize(in, out) ? out : in;
    auto it = changed.find(std::to_string(static_cast<uint32_t>(cp)));
    std::string want = it != changed.end() ? it->get<std::string>() : in;
    if (ours != want && wrong++ < 5) shown += str(" ", hex(cp));
  }
  EXPECT_EQ(wrong, 0u) << name << " differs from HF on " << wrong << " characters:" << shown;
}

// One test, so that the peer (about ten seconds of probing) runs once.
TEST(UnicodeMatchesHf, RegexClassesNfcAndNfdOfEveryCodePointAreHfs) {
  testing::TempDir dir;
  ASSERT_FALSE(dir.path().empty()) << "cannot make a temporary folder";
  std::string file = dir.path() + "/unicode.json";
  std::string error = testing::run_tokenizer_peer("--unicode " + file);
  ASSERT_TRUE(error.empty()) << error;
  auto lines = testing::read_json_lines(file);
  ASSERT_EQ(lines.size(), 1u) << "the peer wrote no unicode.json";
  const nlohmann::json& peer = lines[0];
  expect_regex_classes(peer.at("classes"));
  expect_per_char(peer.at("nfc"), unicode::nfc, "NFC");
  expect_per_char(peer.at("nfd"), unicode::nfd, "NFD");
}

}  // namespace
}  // namespace pdsd
