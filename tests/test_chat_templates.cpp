// Chat templates without the peer: the segments and their loss mask, BOS/EOS facts the tokenizer
// relies on, LLaMA-Factory's own templates (default, alpaca, empty — no HF counterpart, so the
// expected text is written out here from LLaMA-Factory's template.py), and the errors.
// tests/test_chat_template_matches_hf.cpp checks the families that have an official HF template.
#include <gtest/gtest.h>

#include <functional>

#include "common/error.h"
#include "worker/data/chat_template.h"

namespace pdsd::data {
namespace {

Conversation two_exchanges(const std::string& system = "") {
  return {.system = system,
          .turns = {{Role::user, "Q1"}, {Role::assistant, "A1"}, {Role::user, "Q2"}, {Role::assistant, "A2"}},
          .source = "test.json: record 0"};
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an InputError";
  return "";
}

std::string trained_text(const std::vector<Segment>& segments) {
  std::string out;
  for (const auto& s : segments) {
    if (s.trainable) out += s.text;
  }
  return out;
}

TEST(ChatTemplates, NamesAreLlamaFactorys) {
  EXPECT_EQ(ChatTemplate::names(),
            (std::vector<std::string>{"qwen", "llama3", "llama2", "chatglm3", "default", "alpaca", "empty"}));
}

TEST(ChatTemplates, QwenSegmentsAndLossMask) {
  ChatTemplate t = ChatTemplate::named("qwen");
  std::vector<Segment> expected = {
      {"<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n",
       Role::system, false},
      {"<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\n", Role::user, false},
      {"A1<|im_end|>", Role::assistant, true},
      {"\n", Role::assistant, false},
      {"<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n", Role::user, false},
      {"A2<|im_end|>", Role::assistant, true},
      {"\n", Role::assistant, false},
  };
  EXPECT_EQ(t.segments(two_exchanges()), expected);
  EXPECT_EQ(t.end_of_turn(), "<|im_end|>");
  EXPECT_FALSE(t.emits_bos());
  EXPECT_EQ(t.stop_words(), std::vector<std::string>{"<|im_end|>"});
  // A given system prompt replaces the default one.
  EXPECT_EQ(t.segments(two_exchanges("Be brief."))[0].text, "<|im_start|>system\nBe brief.<|im_end|>\n");
}

// For every template: the rendered text is the segments' concatenation, and exactly the responses
// with their end-of-turn text are trained, in order.
TEST(ChatTemplates, EveryTemplateTrainsExactlyTheResponsesAndTheirEndOfTurn) {
  for (const auto& name : ChatTemplate::names()) {
    ChatTemplate t = ChatTemplate::named(name, "<eos>");
    Conversation c = two_exchanges("S");
    auto segments = t.segments(c);
    std::string joined;
    for (const auto& s : segments) joined += s.text;
    EXPECT_EQ(t.render(c), joined) << name;

    std::vector<std::string> trained;
    for (const auto& s : segments) {
      if (!s.trainable) continue;
      EXPECT_EQ(s.role, Role::assistant) << name;
      trained.push_back(s.text);
    }
    ASSERT_EQ(trained.size(), 2u) << name;
    for (size_t i = 0; i < 2; ++i) {
      const std::string response = i == 0 ? "A1" : "A2";
      EXPECT_NE(trained[i].find(response), std::string::npos) << name << ": " << trained[i];
      const std::string& eot = t.end_of_turn();
      EXPECT_EQ(trained[i].substr(trained[i].size() - eot.size()), eot) << name << ": " << trained[i];
      EXPECT_EQ(trained[i].find("Q"), std::string::npos) << name << ": a prompt in the trained text";
    }
  }
}

TEST(ChatTemplates, EndOfTurnTextsTheTokenizerWillSee) {
  EXPECT_EQ(trained_text(ChatTemplate::named("llama3").segments(two_exchanges())), "A1<|eot_id|>A2<|eot_id|>");
  EXPECT_EQ(trained_text(ChatTemplate::named("llama2").segments(two_exchanges())), " A1 </s> A2 </s>");
  EXPECT_EQ(trained_text(ChatTemplate::named("chatglm3").segments(two_exchanges())), "\n A1\n A2");
  EXPECT_EQ(trained_text(ChatTemplate::named("default", "</s>").segments(two_exchanges())), "A1</s>A2</s>");
  EXPECT_EQ(ChatTemplate::named("default", "<|endoftext|>").end_of_turn(), "<|endoftext|>");
}

TEST(ChatTemplates, BosTextIsEmittedByTheTemplateWhereTheModelExpectsIt) {
  ChatTemplate llama3 = ChatTemplate::named("llama3");
  EXPECT_TRUE(llama3.emits_bos());
  EXPECT_EQ(llama3.bos_text(), "<|begin_of_text|>");
  std::string text = llama3.render(two_exchanges());
  EXPECT_EQ(text.rfind("<|begin_of_text|>", 0), 0u);
  EXPECT_EQ(text.find("<|begin_of_text|>", 1), std::string::npos);  // once

  ChatTemplate llama2 = ChatTemplate::named("llama2");
  EXPECT_TRUE(llama2.emits_bos());
  std::string text2 = llama2.render(two_exchanges("S"));
  EXPECT_EQ(text2, "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nQ1 [/INST] A1 </s><s>[INST] Q2 [/INST] A2 </s>");

  ChatTemplate glm = ChatTemplate::named("chatglm3");
  EXPECT_TRUE(glm.emits_bos());
  EXPECT_EQ(glm.bos_text(), "[gMASK]sop");
  EXPECT_TRUE(glm.appends_eos_after_last_response());
  EXPECT_EQ(glm.stop_words(), (std::vector<std::string>{"<|user|>", "<|observation|>"}));

  for (const char* name : {"qwen", "default", "alpaca", "empty"}) {
    EXPECT_FALSE(ChatTemplate::named(name, "</s>").emits_bos()) << name;
    EXPECT_FALSE(ChatTemplate::named(name, "</s>").appends_eos_after_last_response()) << name;
  }
}

// LLaMA-Factory's template.py: default = "System: {{content}}" eos "\n", "Human: {{content}}" eos
// "\nAssistant:", "{{content}}" eos "\n".
TEST(ChatTemplates, LlamaFactoryDefault) {
  ChatTemplate t = ChatTemplate::named("default", "</s>");
  EXPECT_EQ(t.render(two_exchanges("S")),
            "System: S</s>\nHuman: Q1</s>\nAssistant:A1</s>\nHuman: Q2</s>\nAssistant:A2</s>\n");
  EXPECT_EQ(t.render(two_exchanges()), "Human: Q1</s>\nAssistant:A1</s>\nHuman: Q2</s>\nAssistant:A2</s>\n");
}

// alpaca = default system "Below is an instruction ...\n\n" (written as is), "### Instruction:\n{{content}}
// \n\n### Response:\n", "{{content}}" eos "\n\n".
TEST(ChatTemplates, LlamaFactoryAlpaca) {
  ChatTemplate t = ChatTemplate::named("alpaca", "</s>");
  EXPECT_EQ(t.render(two_exchanges()),
            "Below is an instruction that describes a task. Write a response that appropriately completes the "
            "request.\n\n### Instruction:\nQ1\n\n### Response:\nA1</s>\n\n### Instruction:\nQ2\n\n### Response:\n"
            "A2</s>\n\n");
  EXPECT_EQ(t.render(two_exchanges("Sys. ")).rfind("Sys. ### Instruction:\nQ1", 0), 0u);
}

TEST(ChatTemplates, LlamaFactoryEmpty) {
  ChatTemplate t = ChatTemplate::named("empty");
  EXPECT_EQ(t.render(two_exchanges("S")), "SQ1A1Q2A2");
  EXPECT_EQ(trained_text(t.segments(two_exchanges())), "A1A2");
}

TEST(ChatTemplates, MessageTextIsNeverReadAsAPlaceholder) {
  Conversation c{.turns = {{Role::user, "{content} {eos}"}, {Role::assistant, "{eos}"}}};
  EXPECT_EQ(ChatTemplate::named("default", "</s>").render(c), "Human: {content} {eos}</s>\nAssistant:{eos}</s>\n");
}

TEST(ChatTemplates, MergeAdjacentKeepsTheMask) {
  auto segments = ChatTemplate::named("qwen").segments(two_exchanges());
  auto merged = merge_adjacent(segments);
  ASSERT_EQ(merged.size(), 5u);  // system+user | A1 | "\n"+user | A2 | "\n"
  EXPECT_FALSE(merged[0].trainable);
  EXPECT_EQ(merged[1].text, "A1<|im_end|>");
  EXPECT_EQ(merged[2].text, "\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(trained_text(merged), trained_text(segments));
}

TEST(ChatTemplates, Errors) {
  std::string e = error_of([] { ChatTemplate::named("qwen2"); });
  EXPECT_NE(e.find("chat template 'qwen2' is not one pdsd has"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'qwen'?"), std::string::npos) << e;
  e = error_of([] { ChatTemplate::named("alpaca"); });
  EXPECT_NE(e.find("ends each response with the tokenizer's EOS token"), std::string::npos) << e;

  ChatTemplate t = ChatTemplate::named("qwen");
  Conversation users = two_exchanges();
  users.turns[1].role = Role::user;
  e = error_of([&] { t.segments(users); });
  EXPECT_EQ(e.rfind("test.json: record 0: turn 1 is user", 0), 0u) << e;
  Conversation dangling = two_exchanges();
  dangling.turns.pop_back();
  e = error_of([&] { t.render(dangling); });
  EXPECT_NE(e.find("test.json: record 0: ends on a user turn"), std::string::npos) << e;
  e = error_of([&] { t.render(Conversation{.source = "x.jsonl: record 4 (line 5)"}); });
  EXPECT_EQ(e, "x.jsonl: record 4 (line 5): has no turns");
  Conversation tools = two_exchanges();
  tools.tools = "[{\"name\": \"f\"}]";
  e = error_of([&] { t.render(tools); });
  EXPECT_NE(e.find("cannot render tool descriptions yet"), std::string::npos) << e;
}

TEST(ChatTemplates, DefaultTemplateForModelFamily) {
  EXPECT_EQ(default_template_for_model("qwen2", 151936), "qwen");
  EXPECT_EQ(default_template_for_model("llama", 128256), "llama3");
  EXPECT_EQ(default_template_for_model("llama", 32000), "llama2");
  EXPECT_NE(error_of([] { default_template_for_model("gpt2", 50257); }).find("set `template:`"), std::string::npos);
}

}  // namespace
}  // namespace pdsd::data
