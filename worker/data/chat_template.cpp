// The chat templates as data — one row per template — and the one routine that lays a conversation
// out with a row (see chat_template.h). In the formats, {content} is the message text and {eos} the
// tokenizer's EOS text; only the format is scanned for them, never the message.
#include "worker/data/chat_template.h"

#include <array>

#include "common/did_you_mean.h"
#include "common/error.h"

namespace pdsd::data {

namespace {

struct TemplateSpec {
  std::string_view name;
  std::string_view prefix;
  std::string_view system;
  std::string_view default_system;
  bool system_in_first_user;
  std::string_view user;
  std::string_view assistant;
  std::string_view after_assistant;
  bool strip_content;
  std::string_view bos_text;
  std::string_view end_of_turn;
  bool append_eos;
  std::array<std::string_view, 2> stop_words;
};

// Sources: LLaMA-Factory's src/llamafactory/data/template.py for the layout, and the official HF chat
// templates (tests/data/chat_templates/) for the exact text where a family has one.
constexpr std::array<TemplateSpec, 7> kTemplates = {{
    // Qwen2.5-Instruct (ChatML). Its HF template adds this system prompt when none is given.
    {.name = "qwen",
     .prefix = "",
     .system = "<|im_start|>system\n{content}<|im_end|>\n",
     .default_system = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
     .system_in_first_user = false,
     .user = "<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n",
     .assistant = "{content}<|im_end|>",
     .after_assistant = "\n",
     .strip_content = false,
     .bos_text = "",
     .end_of_turn = "<|im_end|>",
     .append_eos = false,
     .stop_words = {"<|im_end|>", ""}},
    // Meta-Llama-3-Instruct; its HF template trims every message. (Llama 3.1+'s HF template also
    // writes a "Cutting Knowledge Date" system header, which LLaMA-Factory's llama3 does not.)
    {.name = "llama3",
     .prefix = "<|begin_of_text|>",
     .system = "<|start_header_id|>system<|end_header_id|>\n\n{content}<|eot_id|>",
     .default_system = "",
     .system_in_first_user = false,
     .user = "<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>"
             "<|start_header_id|>assistant<|end_header_id|>\n\n",
     .assistant = "{content}<|eot_id|>",
     .after_assistant = "",
     .strip_content = true,
     .bos_text = "<|begin_of_text|>",
     .end_of_turn = "<|eot_id|>",
     .append_eos = false,
     .stop_words = {"<|eot_id|>", ""}},
    // Llama-2-chat: BOS before every [INST]; the system prompt opens the first user message.
    {.name = "llama2",
     .prefix = "",
     .system = "<<SYS>>\n{content}\n<</SYS>>\n\n",
     .default_system = "",
     .system_in_first_user = true,
     .user = "<s>[INST] {content} [/INST]",
     .assistant = " {content} </s>",
     .after_assistant = "",
     .strip_content = true,
     .bos_text = "<s>",
     .end_of_turn = "</s>",
     .append_eos = false,
     .stop_words = {"", ""}},
    // ChatGLM3: the next role token ends a response; LLaMA-Factory appends EOS after the last one.
    {.name = "chatglm3",
     .prefix = "[gMASK]sop",
     .system = "<|system|>\n {content}",
     .default_system = "",
     .system_in_first_user = false,
     .user = "<|user|>\n {content}<|assistant|>",
     .assistant = "\n {content}",
     .after_assistant = "",
     .strip_content = false,
     .bos_text = "[gMASK]sop",
     .end_of_turn = "",
     .append_eos = true,
     .stop_words = {"<|user|>", "<|observation|>"}},
    // LLaMA-Factory's own (no HF counterpart).
    {.name = "default",
     .prefix = "",
     .system = "System: {content}{eos}\n",
     .default_system = "",
     .system_in_first_user = false,
     .user = "Human: {content}{eos}\nAssistant:",
     .assistant = "{content}{eos}",
     .after_assistant = "\n",
     .strip_content = false,
     .bos_text = "",
     .end_of_turn = "{eos}",
     .append_eos = false,
     .stop_words = {"", ""}},
    {.name = "alpaca",
     .prefix = "",
     .system = "{content}",
     .default_system = "Below is an instruction that describes a task. "
                       "Write a response that appropriately completes the request.\n\n",
     .system_in_first_user = false,
     .user = "### Instruction:\n{content}\n\n### Response:\n",
     .assistant = "{content}{eos}",
     .after_assistant = "\n\n",
     .strip_content = false,
     .bos_text = "",
     .end_of_turn = "{eos}",
     .append_eos = false,
     .stop_words = {"", ""}},
    // Plain concatenation; nothing marks the end of a response (as in LLaMA-Factory).
    {.name = "empty",
     .prefix = "",
     .system = "{content}",
     .default_system = "",
     .system_in_first_user = false,
     .user = "{content}",
     .assistant = "{content}",
     .after_assistant = "",
     .strip_content = false,
     .bos_text = "",
     .end_of_turn = "",
     .append_eos = false,
     .stop_words = {"", ""}},
}};

// Replaces {content} and {eos} in `format` (only there).
std::string fill_format(std::string_view format, std::string_view content, std::string_view eos) {
  std::string out;
  out.reserve(format.size() + content.size());
  for (size_t i = 0; i < format.size();) {
    if (format.substr(i, 9) == "{content}") {
      out += content;
      i += 9;
    } else if (format.substr(i, 5) == "{eos}") {
      out += eos;
      i += 5;
    } else {
      out += format[i++];
    }
  }
  return out;
}

// Python's str.strip() / Jinja's trim on ASCII whitespace.
std::string strip(std::string_view s) {
  constexpr std::string_view ws = " \t\n\r\f\v";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return "";
  return std::string(s.substr(b, s.find_last_not_of(ws) - b + 1));
}

}  // namespace

ChatTemplate ChatTemplate::named(std::string_view name, std::string_view eos_token) {
  for (const TemplateSpec& spec : kTemplates) {
    if (spec.name != name) continue;
    bool needs_eos = spec.assistant.find("{eos}") != std::string_view::npos;
    if (needs_eos && eos_token.empty()) {
      throw InputError(str("chat template '", name, "' ends each response with the tokenizer's EOS token; ",
                           "pass its text (eos_token in tokenizer_config.json)"));
    }
    ChatTemplate t;
    t.name_ = spec.name;
    t.prefix_ = spec.prefix;
    t.system_format_ = fill_format(spec.system, "{content}", eos_token);
    t.default_system_ = spec.default_system;
    t.system_in_first_user_ = spec.system_in_first_user;
    t.user_format_ = fill_format(spec.user, "{content}", eos_token);
    t.assistant_format_ = fill_format(spec.assistant, "{content}", eos_token);
    t.after_assistant_ = spec.after_assistant;
    t.strip_content_ = spec.strip_content;
    t.bos_text_ = spec.bos_text;
    t.end_of_turn_ = fill_format(spec.end_of_turn, "", eos_token);
    t.append_eos_ = spec.append_eos;
    for (auto word : spec.stop_words) {
      if (!word.empty()) t.stop_words_.emplace_back(word);
    }
    return t;
  }
  auto all = names();
  auto guess = did_you_mean(name, all);
  std::string list;
  for (const auto& n : all) list += (list.empty() ? "" : ", ") + n;
  throw InputError(str("chat template '", name, "' is not one pdsd has (", list, ")",
                       guess ? "; did you mean '" + *guess + "'?" : ""));
}

std::vector<std::string> ChatTemplate::names() {
  std::vector<std::string> out;
  for (const auto& spec : kTemplates) out.emplace_back(spec.name);
  return out;
}

std::vector<Segment> ChatTemplate::segments(const Conversation& conversation) const {
  check_conversation(conversation);
  if (!conversation.tools.empty()) {
    throw InputError(str(conversation.source.empty() ? "conversation" : conversation.source,
                         ": has tools; chat template '", name_, "' cannot render tool descriptions yet"));
  }
  auto content = [&](const std::string& text) { return strip_content_ ? strip(text) : text; };
  const std::string& system = conversation.system.empty() ? default_system_ : conversation.system;

  std::vector<Segment> out;
  if (!prefix_.empty()) out.push_back({prefix_, Role::system, false});
  std::string system_text;
  if (!system.empty()) {
    system_text = fill_format(system_format_, system_in_first_user_ ? system : content(system), "");
    if (!system_in_first_user_) out.push_back({system_text, Role::system, false});
  }
  const auto& turns = conversation.turns;
  for (size_t i = 0; i + 1 < turns.size(); i += 2) {
    std::string user = turns[i].content;
    if (i == 0 && system_in_first_user_) user = system_text + user;
    out.push_back({fill_format(user_format_, content(user), ""), Role::user, false});
    out.push_back({fill_format(assistant_format_, content(turns[i + 1].content), ""), Role::assistant, true});
    if (!after_assistant_.empty()) out.push_back({after_assistant_, Role::assistant, false});
  }
  return out;
}

std::string ChatTemplate::render(const Conversation& conversation) const {
  std::string text;
  for (const auto& s : segments(conversation)) text += s.text;
  return text;
}

std::vector<Segment> merge_adjacent(const std::vector<Segment>& segments) {
  std::vector<Segment> out;
  for (const auto& s : segments) {
    if (!out.empty() && out.back().trainable == s.trainable) {
      out.back().text += s.text;
    } else {
      out.push_back(s);
    }
  }
  return out;
}

std::string default_template_for_model(std::string_view model_type, int64_t vocab_size) {
  if (model_type == "qwen2") return "qwen";
  if (model_type == "llama") return vocab_size >= 128000 ? "llama3" : "llama2";
  throw InputError(str("no default chat template for model_type '", model_type, "'; set `template:` in the job config"));
}

}  // namespace pdsd::data
