// TemplateProcessing, ByteLevel and Sequence post-processors (see post_processor.h).
#include "worker/tokenizer/post_processor.h"

#include <map>
#include <string>

#include "common/error.h"
#include "worker/tokenizer/json_field.h"

namespace pdsd {
namespace {

// The "single" template: a list of the sequence ($A) and special tokens with their ids.
class TemplateProcessor final : public PostProcessor {
 public:
  struct Item {
    bool is_sequence;
    std::vector<int32_t> ids;  // of a special token
  };
  explicit TemplateProcessor(std::vector<Item> items) : items_(std::move(items)) {}

  void process(std::vector<int32_t>& ids, bool add_special_tokens) const override {
    if (!add_special_tokens) return;
    std::vector<int32_t> out;
    out.reserve(ids.size() + 4);
    for (const Item& item : items_) {
      if (item.is_sequence) {
        out.insert(out.end(), ids.begin(), ids.end());
      } else {
        out.insert(out.end(), item.ids.begin(), item.ids.end());
      }
    }
    ids = std::move(out);
  }

 private:
  std::vector<Item> items_;
};

class ByteLevelProcessor final : public PostProcessor {
 public:
  void process(std::vector<int32_t>&, bool) const override {}
};

class SequenceProcessor final : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> steps) : steps_(std::move(steps)) {}
  void process(std::vector<int32_t>& ids, bool add_special_tokens) const override {
    for (const auto& step : steps_) step->process(ids, add_special_tokens);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> steps_;
};

std::unique_ptr<PostProcessor> template_from_json(const JsonField& node) {
  // special_tokens: {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}, ...}
  std::map<std::string, std::vector<int32_t>> special;
  if (auto table = node.find("special_tokens")) {
    if (!table->is_object()) table->fail("must be an object");
    for (const auto& [name, value] : table->json().items()) {
      JsonField entry(value, str(table->path(), ".", name), table->file());
      JsonField ids = entry.at("ids");
      std::vector<int32_t> list;
      for (size_t i = 0; i < ids.size(); ++i) {
        int64_t id = ids[i].as_int();
        if (id < 0 || id > INT32_MAX) ids[i].fail(str("is ", id, ", not a token id"));
        list.push_back(static_cast<int32_t>(id));
      }
      special[name] = std::move(list);
    }
  }
  JsonField single = node.at("single");
  if (!single.is_array()) single.fail("must be a list of {\"Sequence\": ...} and {\"SpecialToken\": ...}");
  std::vector<TemplateProcessor::Item> items;
  for (size_t i = 0; i < single.size(); ++i) {
    JsonField piece = single[i];
    if (auto seq = piece.find("Sequence")) {
      JsonField id = seq->at("id");
      if (id.as_string() != "A") id.fail(str("is \"", id.as_string(), "\": a single-sequence template can only use A"));
      items.push_back({true, {}});
    } else if (auto tok = piece.find("SpecialToken")) {
      JsonField id = tok->at("id");
      auto it = special.find(id.as_string());
      if (it == special.end())
        id.fail(str("is \"", id.as_string(), "\", which is not in ", node.path(), ".special_tokens"));
      items.push_back({false, it->second});
    } else {
      piece.fail("must be {\"Sequence\": ...} or {\"SpecialToken\": ...}");
    }
  }
  return std::make_unique<TemplateProcessor>(std::move(items));
}

}  // namespace

std::unique_ptr<PostProcessor> PostProcessor::from_json(const JsonField& node) {
  std::string type = node.type();
  if (type == "TemplateProcessing") return template_from_json(node);
  if (type == "ByteLevel") return std::make_unique<ByteLevelProcessor>();
  if (type == "Sequence") {
    JsonField list = node.at("processors");
    std::vector<std::unique_ptr<PostProcessor>> steps;
    for (size_t i = 0; i < list.size(); ++i) steps.push_back(from_json(list[i]));
    return std::make_unique<SequenceProcessor>(std::move(steps));
  }
  node.unsupported_type("supported post-processors: TemplateProcessing, ByteLevel, Sequence");
}

}  // namespace pdsd
