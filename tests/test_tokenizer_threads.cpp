// One Tokenizer shared by several threads (as data-loading threads share it) gives each thread the
// ids one thread alone gets: the tokenizer is immutable and its word caches are per thread.
#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "worker/tokenizer/tokenizer.h"
#include "worker/tokenizer/utf8.h"

namespace pdsd {
namespace {

// Deterministic texts mixing words, CJK, emoji, digits and whitespace, with special tokens between.
std::vector<std::string> texts(size_t n) {
  std::mt19937 rng(12345);
  const char* words[] = {"the", "model", " training", "Hello", "'s", "don't", "1234", "  ", "\n", "\t", "é", "😀",
                         "<|im_start|>", "<|im_end|>", "user\n", "def f(x):", "你好", "世界", "👨‍👩‍👧", "ok!"};
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) {
    std::string t;
    for (int k = 0, len = 1 + static_cast<int>(rng() % 40); k < len; ++k) {
      if (rng() % 5 == 0) {
        utf8::append(t, 0x4E00 + rng() % 0x5000);  // a CJK ideograph
      } else {
        t += words[rng() % std::size(words)];
      }
    }
    out.push_back(std::move(t));
  }
  return out;
}

TEST(TokenizerThreads, SharedTokenizerGivesEveryThreadTheSingleThreadIds) {
  for (const char* path : {"tests/data/tokenizers/qwen2/tokenizer.json", "tests/data/tokenizers/llama2/tokenizer.json"}) {
    Tokenizer tok = Tokenizer::from_file(path);
    std::vector<std::string> inputs = texts(3000);
    std::vector<std::vector<int32_t>> expected;
    for (const auto& t : inputs) expected.push_back(tok.encode(t, true));

    constexpr int kThreads = 4;
    std::vector<size_t> wrong(kThreads, 0);
    std::vector<std::thread> threads;
    for (int k = 0; k < kThreads; ++k) {
      threads.emplace_back([&, k] {
        Tokenizer copy = tok;  // copies share the loaded data
        for (size_t i = 0; i < inputs.size(); ++i) {
          size_t j = (i * 7 + static_cast<size_t>(k) * 101) % inputs.size();  // each thread its own order
          const Tokenizer& t = k % 2 ? copy : tok;
          if (t.encode(inputs[j], true) != expected[j]) ++wrong[k];
        }
      });
    }
    for (auto& t : threads) t.join();
    for (int k = 0; k < kThreads; ++k) EXPECT_EQ(wrong[k], 0u) << path << ", thread " << k;
  }
}

}  // namespace
}  // namespace pdsd
