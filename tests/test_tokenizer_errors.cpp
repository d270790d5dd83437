// What the tokenizer says about a tokenizer.json it cannot use: an InputError that names the file
// and the JSON path, for a broken file, for what pdsd does not support, and for an inconsistent
// vocabulary — never a tokenizer that would produce different ids than HF.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "common/error.h"
#include "tests/support/temp_dir.h"
#include "worker/tokenizer/tokenizer.h"

namespace pdsd {
namespace {

// A small valid byte-level tokenizer.json, for tests to break one field at a time.
nlohmann::json valid_tokenizer() {
  return nlohmann::json::parse(R"({
    "version": "1.0", "truncation": null, "padding": null,
    "added_tokens": [{"id": 4, "content": "<|im_end|>", "single_word": false, "lstrip": false, "rstrip": false,
                      "normalized": false, "special": true}],
    "normalizer": {"type": "NFC"},
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": "\\p{L}+|\\s+"}, "behavior": "Isolated", "invert": false},
      {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]},
    "post_processor": null,
    "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
    "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
              "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
              "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3}, "merges": ["a b"]}
  })");
}

class TokenizerErrors : public ::testing::Test {
 protected:
  std::string write(const std::string& content) {
    std::string path = dir_.path() + "/tokenizer.json";
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }
  std::string write_json(const nlohmann::json& j) { return write(j.dump()); }

  // The message of the InputError loading `path` throws ("" if it loads).
  static std::string load_error(const std::string& path) {
    try {
      Tokenizer::from_file(path);
    } catch (const InputError& e) {
      return e.what();
    }
    return "";
  }

  void expect_error(const nlohmann::json& j, const std::string& expected) {
    std::string path = write_json(j);
    std::string message = load_error(path);
    EXPECT_NE(message.find(path + ": "), std::string::npos) << "the message does not name the file: " << message;
    EXPECT_NE(message.find(expected), std::string::npos) << "expected \"" << expected << "\" in: " << message;
  }

  testing::TempDir dir_;
};

TEST_F(TokenizerErrors, TheValidBaseLoadsAndEncodes) {
  Tokenizer tok = Tokenizer::from_file(write_json(valid_tokenizer()));
  EXPECT_EQ(tok.encode("ab ab<|im_end|>"), (std::vector<int32_t>{2, 3, 2, 4}));
  EXPECT_EQ(tok.decode({2, 3, 2, 4}), "ab ab<|im_end|>");
  EXPECT_EQ(tok.decode({2, 3, 2, 4}, true), "ab ab");
  EXPECT_EQ(tok.vocab_size(), 5u);
}

TEST_F(TokenizerErrors, MissingFileIsNamed) {
  std::string path = dir_.path() + "/nope/tokenizer.json";
  EXPECT_EQ(load_error(path), path + ": cannot open the file");
}

TEST_F(TokenizerErrors, TruncatedOrInvalidJsonNamesTheFile) {
  std::string text = valid_tokenizer().dump(2);
  std::string path = write(text.substr(0, text.size() / 2));
  std::string message = load_error(path);
  EXPECT_TRUE(message.starts_with(path + ": not valid JSON (")) << message;
  EXPECT_NE(message.find("line"), std::string::npos) << "the message should say where: " << message;
  path = write(std::string("{\"model\": }"));
  EXPECT_TRUE(load_error(path).starts_with(path + ": not valid JSON (")) << load_error(path);
}

TEST_F(TokenizerErrors, UnsupportedModelTypeIsNamedWithItsPath) {
  auto j = valid_tokenizer();
  j["model"]["type"] = "WordPiece";
  expect_error(j, "model.type \"WordPiece\" is not supported (BPE only)");
}

TEST_F(TokenizerErrors, MissingModelIsNamed) {
  auto j = valid_tokenizer();
  j.erase("model");
  expect_error(j, "model is missing");
}

TEST_F(TokenizerErrors, MergeNamingAnUnknownTokenIsNamed) {
  auto j = valid_tokenizer();
  j["model"]["merges"] = {"a b", "a zz"};
  expect_error(j, "model.merges[1] names \"zz\", which is not in model.vocab");
  j["model"]["merges"] = nlohmann::json::array({nlohmann::json::array({"b", "a"})});
  expect_error(j, "model.merges[0] merges into \"ba\", which is not in model.vocab");
  j["model"]["merges"] = {"a  b"};
  expect_error(j, "model.merges[0] is \"a  b\", not two tokens separated by one space");
}

TEST_F(TokenizerErrors, UnsupportedComponentsAreNamedWithTheirPath) {
  auto j = valid_tokenizer();
  j["normalizer"] = {{"type", "Lowercase"}};
  expect_error(j, "normalizer.type \"Lowercase\" is not supported");
  j = valid_tokenizer();
  j["pre_tokenizer"]["pretokenizers"][1] = {{"type", "Whitespace"}};
  expect_error(j, "pre_tokenizer.pretokenizers[1].type \"Whitespace\" is not supported");
  j = valid_tokenizer();
  j["decoder"] = {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}};
  expect_error(j, "decoder.type \"WordPiece\" is not supported");
  j = valid_tokenizer();
  j["post_processor"] = {{"type", "BertProcessing"}};
  expect_error(j, "post_processor.type \"BertProcessing\" is not supported");
  j = valid_tokenizer();
  j["model"]["dropout"] = 0.1;
  expect_error(j, "model.dropout is set");
  j = valid_tokenizer();
  j["model"]["continuing_subword_prefix"] = "##";
  expect_error(j, "model.continuing_subword_prefix is set");
}

TEST_F(TokenizerErrors, RegexConstructsPdsdDoesNotTranslateAreNamed) {
  for (const char* regex : {"\\d+", "\\w+", "\\p{Lu}", "[[:alpha:]]", "[^\\S]", "(\\w)\\1"}) {
    auto j = valid_tokenizer();
    j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = regex;
    expect_error(j, "pre_tokenizer.pretokenizers[0].pattern.Regex uses ");
  }
  auto j = valid_tokenizer();
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(a";
  expect_error(j, "pre_tokenizer.pretokenizers[0].pattern.Regex is not a regex pdsd can compile");
}

TEST_F(TokenizerErrors, InconsistentVocabularyIsNamed) {
  auto j = valid_tokenizer();
  j["model"]["vocab"]["b2"] = 1;
  expect_error(j, "model.vocab gives id 1 to both");
  j = valid_tokenizer();
  j["model"]["unk_token"] = "<unk>";
  expect_error(j, "model.unk_token is \"<unk>\", which is not in model.vocab");
  j = valid_tokenizer();
  j["post_processor"] = nlohmann::json::parse(
      R"({"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
          {"Sequence": {"id": "A", "type_id": 0}}], "pair": [], "special_tokens": {}})");
  expect_error(j, "post_processor.single[0].SpecialToken.id is \"<s>\", which is not in post_processor.special_tokens");
}

TEST_F(TokenizerErrors, TextThatIsNotUtf8IsAnInputError) {
  Tokenizer tok = Tokenizer::from_file(write_json(valid_tokenizer()));
  EXPECT_THROW(tok.encode(std::string("ab\xC3(", 4)), InputError);
  EXPECT_THROW(tok.encode(std::string("\xED\xA0\x80", 3)), InputError);  // a UTF-16 surrogate
}

}  // namespace
}  // namespace pdsd
