// ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace and Sequence decoders (see decoder.h).
#include "worker/tokenizer/decoder.h"

#include "common/error.h"
#include "worker/tokenizer/byte_level.h"
#include "worker/tokenizer/json_field.h"
#include "worker/tokenizer/pattern.h"
#include "worker/tokenizer/utf8.h"

namespace pdsd {
namespace {

std::vector<char32_t> chars_of(const std::string& s) {
  std::vector<char32_t> out;
  for (size_t pos = 0; pos < s.size();) out.push_back(utf8::decode(s, pos));
  return out;
}

char32_t one_char(const JsonField& field) {
  std::string s = field.as_string();
  size_t pos = 0;
  if (s.empty()) field.fail("must be one character");
  char32_t c = utf8::decode(s, pos);
  if (pos != s.size()) field.fail("must be one character");
  return c;
}

// Bytes back from GPT-2's alphabet; a token with a character outside it keeps its own bytes.
class ByteLevelDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const std::string& t : tokens) {
      size_t start = bytes.size();
      bool mapped = true;
      for (size_t pos = 0; pos < t.size();) {
        int b = byte_level::byte_of(utf8::decode(t, pos));
        if (b < 0) {
          mapped = false;
          break;
        }
        bytes.push_back(static_cast<char>(b));
      }
      if (!mapped) {
        bytes.resize(start);
        bytes += t;
      }
    }
    tokens.assign(1, utf8::from_bytes_lossy(bytes));
  }
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(Pattern pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<Pattern::Match> matches;
    for (std::string& t : tokens) {
      matches.clear();
      pattern_.find_all(t, matches);
      if (matches.empty()) continue;
      std::string out;
      size_t last = 0;
      for (const auto& m : matches) {
        out.append(t, last, m.start - last).append(content_);
        last = m.end;
      }
      out.append(t, last);
      t = std::move(out);
    }
  }

 private:
  Pattern pattern_;
  std::string content_;
};

// Runs of <0xNN> tokens become the bytes they stand for; a run that is not valid UTF-8 becomes one
// U+FFFD per byte (HF's rule, not from_utf8_lossy's).
class ByteFallbackDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string run;
    size_t run_bytes = 0;
    auto flush = [&] {
      if (run_bytes == 0) return;
      if (utf8::first_invalid(run) == std::string::npos) {
        out.push_back(run);
      } else {
        for (size_t i = 0; i < run_bytes; ++i) out.emplace_back("\xEF\xBF\xBD");
      }
      run.clear();
      run_bytes = 0;
    };
    for (std::string& t : tokens) {
      int byte = byte_of_token(t);
      if (byte >= 0) {
        run.push_back(static_cast<char>(byte));
        ++run_bytes;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens = std::move(out);
  }

 private:
  // "<0xNN>" -> NN, as HF reads it (u8::from_str_radix, which also takes "+N"), else -1.
  static int byte_of_token(const std::string& t) {
    if (t.size() != 6 || !t.starts_with("<0x") || t.back() != '>') return -1;
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    if (t[3] == '+') return hex(t[4]);
    int hi = hex(t[3]), lo = hex(t[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
  }
};

class FuseDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string joined;
    for (const auto& t : tokens) joined += t;
    tokens.assign(1, std::move(joined));
  }
};

// Removes up to `start` leading and `stop` trailing `content` characters from each token.
class StripDecoder final : public Decoder {
 public:
  StripDecoder(char32_t content, size_t start, size_t stop) : content_(content), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) {
      std::vector<char32_t> chars = chars_of(t);
      size_t begin = 0;
      for (size_t i = 0; i < start_ && i < chars.size() && chars[i] == content_; ++i) begin = i + 1;
      size_t end = chars.size();
      for (size_t i = 0; i < stop_ && i < chars.size() && chars[chars.size() - 1 - i] == content_; ++i)
        end = chars.size() - 1 - i;
      std::string out;
      for (size_t i = begin; i < end; ++i) utf8::append(out, chars[i]);
      t = std::move(out);
    }
  }

 private:
  char32_t content_;
  size_t start_, stop_;
};

// The replacement character back to a space, except in the first token when a prefix was prepended.
class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(char32_t replacement, bool prepends) : replacement_(replacement), prepends_(prepends) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      for (char32_t c : chars_of(tokens[i])) {
        if (c != replacement_) {
          utf8::append(out, c);
        } else if (i != 0 || !prepends_) {
          out.push_back(' ');
        }
      }
      tokens[i] = std::move(out);
    }
  }

 private:
  char32_t replacement_;
  bool prepends_;
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& step : steps_) step->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

}  // namespace

std::unique_ptr<Decoder> Decoder::from_json(const JsonField& node) {
  std::string type = node.type();
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Replace")
    return std::make_unique<ReplaceDecoder>(Pattern::from_json(node.at("pattern")), node.at("content").as_string());
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    auto count = [&](const char* key) {
      JsonField f = node.at(key);
      int64_t n = f.as_int();
      if (n < 0) f.fail("must not be negative");
      return static_cast<size_t>(n);
    };
    return std::make_unique<StripDecoder>(one_char(node.at("content")), count("start"), count("stop"));
  }
  if (type == "Metaspace") {
    std::string scheme = "always";
    if (auto s = node.find("prepend_scheme")) scheme = s->as_string();
    if (scheme != "first" && scheme != "always" && scheme != "never")
      node.at("prepend_scheme").fail(str("\"", scheme, "\" is not a prepend scheme (first, always, never)"));
    if (auto legacy = node.find("add_prefix_space"); legacy && !legacy->as_bool() && scheme != "never")
      legacy->fail("is false but prepend_scheme is not \"never\"");
    return std::make_unique<MetaspaceDecoder>(one_char(node.at("replacement")), scheme != "never");
  }
  if (type == "Sequence") {
    JsonField list = node.at("decoders");
    std::vector<std::unique_ptr<Decoder>> steps;
    for (size_t i = 0; i < list.size(); ++i) steps.push_back(from_json(list[i]));
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  node.unsupported_type("supported decoders: ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence");
}

std::string decode_tokens(const Decoder* decoder, std::vector<std::string> tokens) {
  std::string out;
  if (decoder == nullptr) {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) out += ' ';
      out += tokens[i];
    }
    return out;
  }
  decoder->decode_chain(tokens);
  for (const auto& t : tokens) out += t;
  return out;
}

}  // namespace pdsd
