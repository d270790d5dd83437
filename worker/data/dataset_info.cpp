// Reads dataset_info.json entries with LLaMA-Factory's semantics (see dataset_info.h); every refusal
// names the file and the entry, and says what to change.
#include "worker/data/dataset_info.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "common/did_you_mean.h"
#include "common/error.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace pdsd::data {

namespace {

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// One entry being read; `fail` prefixes every message with the file and the entry's name.
class EntryReader {
 public:
  EntryReader(const std::string& info_file, const std::string& name, const json& entry)
      : info_file_(info_file), name_(name), entry_(entry) {}

  [[noreturn]] void fail(const std::string& message) const {
    throw InputError(str(info_file_, ": dataset '", name_, "': ", message));
  }

  // LLaMA-Factory's `obj.get(key, default)` for a string-or-null value inside `object` (the entry,
  // "columns" or "tags"); `where` names that object in messages. null and "" both mean unset.
  std::string optional_string(const json& object, const std::string& where, const std::string& key,
                              const std::string& fallback) const {
    auto it = object.find(key);
    if (it == object.end()) return fallback;
    if (it->is_null()) return "";
    if (!it->is_string()) fail(str(where, "\"", key, "\" must be a string, got ", it->type_name()));
    return it->get<std::string>();
  }

  const json& entry() const { return entry_; }

 private:
  std::string info_file_;
  std::string name_;
  const json& entry_;
};

void refuse_unsupported_sources(const EntryReader& r) {
  for (const char* key : {"hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name"}) {
    if (r.entry().contains(key)) {
      r.fail(str("has \"", key, "\": pdsd reads local files only (LLaMA-Factory would fetch this one); ",
                 "download it into the dataset dir and give its \"file_name\" instead"));
    }
  }
  auto ranking = r.entry().find("ranking");
  if (ranking != r.entry().end() && !ranking->is_null()) {
    if (!ranking->is_boolean()) r.fail(str("\"ranking\" must be true or false, got ", ranking->dump()));
    if (ranking->get<bool>()) {
      r.fail("is a preference dataset (\"ranking\": true); pdsd trains SFT, which needs one response per record");
    }
  }
}

Formatting read_formatting(const EntryReader& r) {
  std::string text = r.optional_string(r.entry(), "", "formatting", "alpaca");
  if (text == "alpaca" || text.empty()) return Formatting::alpaca;
  if (text == "sharegpt" || text == "openai") return Formatting::sharegpt;
  auto guess = did_you_mean(text, {"alpaca", "sharegpt", "openai"});
  r.fail(str("\"formatting\": '", text, "' is not alpaca or sharegpt", guess ? "; did you mean '" + *guess + "'?" : ""));
}

// With "columns" present, LLaMA-Factory sets every column from it, unlisted ones to None.
DatasetColumns read_columns(const EntryReader& r, Formatting formatting) {
  DatasetColumns c;
  auto it = r.entry().find("columns");
  if (it == r.entry().end()) return c;
  if (!it->is_object()) r.fail(str("\"columns\" must be an object, got ", it->type_name()));
  const json& cols = *it;
  const std::string where = "\"columns\": ";
  c.prompt = r.optional_string(cols, where, "prompt", "");
  c.query = r.optional_string(cols, where, "query", "");
  c.response = r.optional_string(cols, where, "response", "");
  c.history = r.optional_string(cols, where, "history", "");
  c.messages = r.optional_string(cols, where, "messages", "");
  c.system = r.optional_string(cols, where, "system", "");
  c.tools = r.optional_string(cols, where, "tools", "");
  for (const char* media : {"images", "videos", "audios"}) {
    if (!r.optional_string(cols, where, media, "").empty()) {
      r.fail(str("\"columns\" maps \"", media, "\": multimodal data is not supported (pdsd trains text-only models)"));
    }
  }
  if (!r.optional_string(cols, where, "kto_tag", "").empty()) {
    r.fail("\"columns\" maps \"kto_tag\": KTO data is not SFT data");
  }
  if (formatting == Formatting::alpaca && c.response.empty()) {
    r.fail("\"columns\" does not name the \"response\" column, so no record would have a response to train on "
           "(as in LLaMA-Factory, columns left out of \"columns\" are unset): add \"response\": \"output\"");
  }
  if (formatting == Formatting::alpaca && c.prompt.empty() && c.query.empty()) {
    r.fail("\"columns\" names neither \"prompt\" nor \"query\", so every user turn would be empty "
           "(columns left out of \"columns\" are unset): add \"prompt\": \"instruction\"");
  }
  if (formatting == Formatting::sharegpt && c.messages.empty()) {
    r.fail("\"columns\" does not name the \"messages\" column (columns left out of \"columns\" are unset): "
           "add \"messages\": \"conversations\"");
  }
  return c;
}

// Likewise for "tags": once given, unlisted tags are unset.
DatasetTags read_tags(const EntryReader& r, Formatting formatting) {
  DatasetTags t;
  auto it = r.entry().find("tags");
  if (it == r.entry().end()) return t;
  if (!it->is_object()) r.fail(str("\"tags\" must be an object, got ", it->type_name()));
  const json& tags = *it;
  const std::string where = "\"tags\": ";
  t.role_tag = r.optional_string(tags, where, "role_tag", "");
  t.content_tag = r.optional_string(tags, where, "content_tag", "");
  t.user_tag = r.optional_string(tags, where, "user_tag", "");
  t.assistant_tag = r.optional_string(tags, where, "assistant_tag", "");
  t.observation_tag = r.optional_string(tags, where, "observation_tag", "");
  t.function_tag = r.optional_string(tags, where, "function_tag", "");
  t.system_tag = r.optional_string(tags, where, "system_tag", "");
  if (formatting == Formatting::sharegpt) {
    for (auto [key, value] : {std::pair{"role_tag", &t.role_tag}, {"content_tag", &t.content_tag},
                              {"user_tag", &t.user_tag}, {"assistant_tag", &t.assistant_tag}}) {
      if (value->empty()) {
        r.fail(str("\"tags\" does not give \"", key, "\", and tags left out of \"tags\" are unset (as in ",
                   "LLaMA-Factory), so no message could be read: list every tag, e.g. role_tag \"role\", ",
                   "content_tag \"content\", user_tag \"user\", assistant_tag \"assistant\", system_tag \"system\""));
      }
    }
  }
  return t;
}

std::optional<int64_t> read_num_samples(const EntryReader& r) {
  auto it = r.entry().find("num_samples");
  if (it == r.entry().end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer() || it->get<int64_t>() < 0) {
    r.fail(str("\"num_samples\" must be a non-negative whole number, got ", it->dump()));
  }
  return it->get<int64_t>();
}

DatasetAttr read_entry(const std::string& info_file, const std::string& dataset_dir, const std::string& name,
                       const json& entry) {
  EntryReader r(info_file, name, entry);
  if (!entry.is_object()) r.fail(str("must be an object, got ", entry.type_name()));
  refuse_unsupported_sources(r);
  DatasetAttr a;
  a.name = name;
  a.info_file = info_file;
  a.file_name = r.optional_string(entry, "", "file_name", "");
  if (a.file_name.empty()) r.fail("needs a \"file_name\": a file or folder in the dataset dir");
  a.path = (fs::path(dataset_dir) / a.file_name).string();
  a.formatting = read_formatting(r);
  a.num_samples = read_num_samples(r);
  a.columns = read_columns(r, a.formatting);
  a.tags = read_tags(r, a.formatting);
  return a;
}

}  // namespace

std::vector<std::string> split_dataset_names(const std::string& names) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= names.size()) {
    size_t comma = names.find(',', start);
    if (comma == std::string::npos) comma = names.size();
    std::string name = trim(names.substr(start, comma - start));
    if (!name.empty() && std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
    start = comma + 1;
  }
  return out;
}

std::vector<DatasetAttr> read_dataset_info(const std::string& dataset_dir, const std::string& names) {
  const std::string info_file = (fs::path(dataset_dir) / "dataset_info.json").string();
  std::ifstream in(info_file);
  if (!in) throw InputError(str(info_file, ": cannot open (dataset_dir must hold LLaMA-Factory's dataset_info.json)"));
  json info;
  try {
    info = json::parse(in);
  } catch (const json::parse_error& e) {
    throw InputError(str(info_file, ": not valid JSON: ", e.what()));
  }
  if (!info.is_object()) throw InputError(str(info_file, ": must be a JSON object mapping dataset names to entries"));

  std::vector<std::string> known;
  for (const auto& [key, _] : info.items()) known.push_back(key);
  std::vector<DatasetAttr> attrs;
  auto wanted = split_dataset_names(names);
  if (wanted.empty()) throw InputError(str("no dataset named: give dataset names from ", info_file));
  for (const auto& name : wanted) {
    auto it = info.find(name);
    if (it == info.end()) {
      auto guess = did_you_mean(name, known);
      throw InputError(str(info_file, ": has no dataset '", name, "'", guess ? "; did you mean '" + *guess + "'?" : ""));
    }
    attrs.push_back(read_entry(info_file, dataset_dir, name, *it));
  }
  return attrs;
}

}  // namespace pdsd::data
