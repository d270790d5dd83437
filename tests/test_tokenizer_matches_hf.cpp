// pdsd's tokenizer against the peer, HF tokenizers, on every tokenizer file we ship for tests:
// Qwen2-, Llama 3- and Llama 2-style files made by scripts/make_test_tokenizers.py (with the real
// files' normalizer, pre-tokenizer, model options, added tokens, decoder and post-processor), the
// newer Metaspace form of Llama 2, a file using the remaining supported components, and
// examples/tiny-qwen2.
//
// At test time tests/peer/tokenizer_cases.py has HF encode 12,000 seeded, varied strings per
// tokenizer (Chinese, English, code, emoji with ZWJ sequences, whitespace runs, digits,
// contractions in mixed case, combining marks, random code points from every plane, special
// tokens embedded in text) with and without special tokens, decode them with and without
// skip_special_tokens, and decode id lists that cut characters in half. Every one of ours must
// be identical; the first mismatches are reported with the string and both results.
#include <gtest/gtest.h>

#include <sstream>

#include "common/error.h"
#include "tests/support/tokenizer_peer.h"
#include "worker/tokenizer/tokenizer.h"

namespace pdsd {
namespace {

struct TokenizerFile {
  const char* name;
  const char* path;
};

const TokenizerFile kFiles[] = {
    {"qwen2", "tests/data/tokenizers/qwen2/tokenizer.json"},
    {"llama3", "tests/data/tokenizers/llama3/tokenizer.json"},
    {"llama2", "tests/data/tokenizers/llama2/tokenizer.json"},
    {"llama2_metaspace", "tests/data/tokenizers/llama2-metaspace/tokenizer.json"},
    {"variety", "tests/data/tokenizers/variety/tokenizer.json"},
    {"tiny_qwen2", "examples/tiny-qwen2/tokenizer.json"},
};

// Test names show the file (gtest prints parameters with PrintTo).
void PrintTo(const TokenizerFile& f, std::ostream* os) { *os << f.path; }

constexpr size_t kMinCases = 10000;
constexpr size_t kShown = 5;

std::string show(const std::string& text) {
  std::string quoted = nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (quoted.size() > 400) quoted = quoted.substr(0, 400) + "...(" + std::to_string(text.size()) + " bytes)";
  return quoted;
}

std::string show(const std::vector<int32_t>& ids) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < ids.size() && i < 60; ++i) out << (i ? "," : "") << ids[i];
  if (ids.size() > 60) out << ",... (" << ids.size() << " ids)";
  out << "]";
  return out.str();
}

// Counts mismatches of one kind and keeps the first few descriptions.
struct Mismatches {
  std::string what;
  size_t count = 0;
  std::string shown;
  void add(const std::string& description) {
    if (count++ < kShown) shown += "\n  " + description;
  }
  void report(size_t total) const {
    EXPECT_EQ(count, 0u) << what << ": " << count << " of " << total << " differ from HF tokenizers; first ones:"
                         << shown;
  }
};

class TokenizerMatchesHf : public ::testing::TestWithParam<TokenizerFile> {};

TEST_P(TokenizerMatchesHf, IdsAndDecodedTextAreIdentical) {
  const TokenizerFile& file = GetParam();
  testing::TempDir dir;
  ASSERT_FALSE(dir.path().empty()) << "cannot make a temporary folder";
  std::string peer_error = testing::run_tokenizer_peer(str("--out ", dir.path(), " ", file.name, "=", file.path));
  ASSERT_TRUE(peer_error.empty()) << peer_error;
  Tokenizer tok = Tokenizer::from_file(file.path);
  std::vector<nlohmann::json> lines = testing::read_json_lines(dir.path() + "/" + file.name + ".jsonl");
  ASSERT_FALSE(lines.empty()) << "the peer wrote no cases for " << file.path;

  const nlohmann::json& meta = lines[0].at("meta");
  EXPECT_EQ(tok.vocab_size(), meta.at("vocab_size").get<size_t>());
  Mismatches vocab{"token_to_id"};
  for (const auto& [token, id] : meta.at("vocab").items()) {
    std::optional<int32_t> ours = tok.token_to_id(token);
    if (ours != id.get<int32_t>())
      vocab.add(str(show(token), ": HF ", id.get<int32_t>(), ", ours ", ours ? std::to_string(*ours) : "none"));
  }
  vocab.report(meta.at("vocab").size());

  Mismatches ids{"encode(text)"}, ids_special{"encode(text, add_special_tokens=true)"},
      decoded{"decode(encode(text))"}, decoded_skip{"decode(encode(text, true), skip_special_tokens=true)"},
      decoded_lists{"decode(ids) of other id lists"}, decoded_lists_skip{"decode(ids, skip_special_tokens=true) of other id lists"};
  size_t encode_cases = 0, decode_cases = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    const nlohmann::json& c = lines[i];
    if (c.contains("text")) {
      ++encode_cases;
      std::string text = c.at("text").get<std::string>();
      auto want = c.at("ids").get<std::vector<int32_t>>();
      auto want_special = c.at("ids_special").get<std::vector<int32_t>>();
      std::vector<int32_t> got = tok.encode(text);
      std::vector<int32_t> got_special = tok.encode(text, true);
      if (got != want) ids.add(str(show(text), "\n    HF   ", show(want), "\n    ours ", show(got)));
      if (got_special != want_special)
        ids_special.add(str(show(text), "\n    HF   ", show(want_special), "\n    ours ", show(got_special)));
      std::string d = tok.decode(want), d_want = c.at("decoded").get<std::string>();
      if (d != d_want) decoded.add(str(show(want), "\n    HF   ", show(d_want), "\n    ours ", show(d)));
      std::string ds = tok.decode(want_special, true), ds_want = c.at("decoded_skip").get<std::string>();
      if (ds != ds_want)
        decoded_skip.add(str(show(want_special), "\n    HF   ", show(ds_want), "\n    ours ", show(ds)));
    } else {
      ++decode_cases;
      auto list = c.at("decode_ids").get<std::vector<int32_t>>();
      std::string d = tok.decode(list), d_want = c.at("decoded").get<std::string>();
      if (d != d_want) decoded_lists.add(str(show(list), "\n    HF   ", show(d_want), "\n    ours ", show(d)));
      std::string ds = tok.decode(list, true), ds_want = c.at("decoded_skip").get<std::string>();
      if (ds != ds_want)
        decoded_lists_skip.add(str(show(list), "\n    HF   ", show(ds_want), "\n    ours ", show(ds)));
    }
  }
  EXPECT_GE(encode_cases, kMinCases);
  EXPECT_GT(decode_cases, 0u);
  for (const Mismatches* m : {&ids, &ids_special, &decoded, &decoded_skip}) m->report(encode_cases);
  for (const Mismatches* m : {&decoded_lists, &decoded_lists_skip}) m->report(decode_cases);
  std::cout << "[ compared ] " << file.path << ": " << encode_cases << " strings, " << decode_cases
            << " other id lists, " << meta.at("vocab").size() << " vocabulary entries\n";
}

INSTANTIATE_TEST_SUITE_P(Files, TokenizerMatchesHf, ::testing::ValuesIn(kFiles),
                         [](const ::testing::TestParamInfo<TokenizerFile>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace pdsd
