// Chat templates: a Conversation → the exact text a chat model was trained on, as an ordered list
// of segments that say which text the loss trains on. Tokenizing segment by segment and setting
// labels to -100 on non-trainable segments gives the SFT loss mask; concatenating the texts gives
// the plain rendered string.
//
//   ChatTemplate t = ChatTemplate::named("qwen");
//   for (const Segment& s : t.segments(conversation)) append(tokenize(s.text), s.trainable);
//   std::string text = t.render(conversation);  // == HF apply_chat_template(messages, tokenize=False)
//
// Names are LLaMA-Factory's `template:` values: qwen, llama3, llama2, chatglm3, default, alpaca,
// empty. Trainable = each assistant response plus its end-of-turn text (<|im_end|>, <|eot_id|>,
// </s>); separators after it (qwen's "\n") are not trained. LLaMA-Factory trains those too; the
// difference does not change the rendered text.
//
// Where a model family has an official Hugging Face chat template (Qwen2.5-Instruct,
// Meta-Llama-3-Instruct, Llama-2-chat, chatglm3-6b), the rendered text equals that template's
// output (tests/test_chat_template_matches_hf.cpp checks it with transformers). That means
// following HF where LLaMA-Factory differs: llama3 and llama2 strip whitespace around each message
// as their HF templates do, llama2 puts spaces around responses ("[/INST] answer </s>"), and
// chatglm3 writes "<|user|>\n text" with the space its HF template has.
//
// BOS: emits_bos() says the template writes the beginning-of-sequence text itself (llama3
// "<|begin_of_text|>", llama2 "<s>" before every [INST], chatglm3 "[gMASK]sop"); the tokenizer must
// then not add its own. For chatglm3 nothing ends a response in the text; like LLaMA-Factory's
// efficient_eos, appends_eos_after_last_response() asks the tokenizer to append a (trainable) EOS
// token after the final segment.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "worker/data/conversation.h"

namespace pdsd::data {

struct Segment {
  std::string text;
  Role role = Role::system;  // the turn it belongs to; system also for the template's prefix (BOS text)
  bool trainable = false;
  bool operator==(const Segment&) const = default;
};

class ChatTemplate {
 public:
  // A template by its LLaMA-Factory name. `eos_token` is the tokenizer's EOS text; templates that end
  // responses with "the model's EOS" (default, alpaca) need it, the others ignore it. Throws
  // InputError for an unknown name (with a did-you-mean) or a missing eos_token.
  static ChatTemplate named(std::string_view name, std::string_view eos_token = "");

  // Every name named() accepts.
  static std::vector<std::string> names();

  // The segments of a conversation (checked with check_conversation; a conversation with tools is
  // refused, since no template renders tools yet). Adjacent segments may share a trainable flag.
  std::vector<Segment> segments(const Conversation& conversation) const;

  // The concatenated text of segments().
  std::string render(const Conversation& conversation) const;

  const std::string& name() const { return name_; }
  bool emits_bos() const { return !bos_text_.empty(); }
  const std::string& bos_text() const { return bos_text_; }
  const std::string& end_of_turn() const { return end_of_turn_; }  // "" for chatglm3 and empty
  const std::string& default_system() const { return default_system_; }
  bool appends_eos_after_last_response() const { return append_eos_; }
  const std::vector<std::string>& stop_words() const { return stop_words_; }

 private:
  ChatTemplate() = default;

  std::string name_;
  std::string prefix_;          // once, before everything
  std::string system_format_;   // "{content}" is the system prompt
  std::string default_system_;  // used when a conversation has none
  bool system_in_first_user_ = false;  // llama2: the formatted system text opens the first user message
  std::string user_format_;     // a user turn and the assistant header after it
  std::string assistant_format_;  // the trainable response and its end-of-turn text
  std::string after_assistant_;   // untrained separator after each response
  bool strip_content_ = false;    // strip whitespace around each message, as the HF template does
  std::string bos_text_;
  std::string end_of_turn_;
  bool append_eos_ = false;
  std::vector<std::string> stop_words_;
};

// Joins neighbouring segments with the same trainable flag (keeping the first one's role): the loss
// mask is unchanged, and tokenizing longer runs matches whole-string tokenization more closely.
std::vector<Segment> merge_adjacent(const std::vector<Segment>& segments);

// LLaMA-Factory's template for a model family when the job gives none: config.json's model_type
// "qwen2" → qwen; "llama" → llama3 when the vocabulary has Llama 3's 128k tokens, else llama2.
// Throws InputError for other families.
std::string default_template_for_model(std::string_view model_type, int64_t vocab_size);

}  // namespace pdsd::data
