// A node of tokenizer.json that knows where it is, so every error names the file and the JSON path:
//
//   JsonField root(json, "", "/models/x/tokenizer.json");
//   JsonField type = root.at("model").at("type");      // path "model.type"
//   if (type.as_string() != "BPE") type.fail("\"WordPiece\" is not supported (BPE only)");
//   // -> InputError: /models/x/tokenizer.json: model.type "WordPiece" is not supported (BPE only)
//
// The file name and the json are borrowed: both must outlive every JsonField made from them.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pdsd {

class JsonField {
 public:
  JsonField(const nlohmann::json& value, std::string path, const std::string& file)
      : value_(&value), path_(std::move(path)), file_(&file) {}

  const nlohmann::json& json() const { return *value_; }
  const std::string& path() const { return path_; }
  const std::string& file() const { return *file_; }

  // The member `key`; missing or null is an error ("<path>.<key> is missing" / "is null").
  JsonField at(std::string_view key) const;
  // The member `key`, or nullopt when it is missing or null.
  std::optional<JsonField> find(std::string_view key) const;
  // The i-th element of an array.
  JsonField operator[](size_t i) const;
  size_t size() const;  // of an array or object (fails on anything else)

  bool is_null() const { return value_->is_null(); }
  bool is_string() const { return value_->is_string(); }
  bool is_array() const { return value_->is_array(); }
  bool is_object() const { return value_->is_object(); }

  std::string as_string() const;
  bool as_bool() const;
  int64_t as_int() const;
  double as_number() const;
  // A member that may be missing or null.
  bool bool_or(std::string_view key, bool fallback) const;
  std::optional<std::string> string_or_null(std::string_view key) const;

  // Its "type" member (a string), which selects the component a node describes.
  std::string type() const { return at("type").as_string(); }
  // Fails with `<file>: <path>.type "<type>" is not supported (<supported>)`.
  [[noreturn]] void unsupported_type(std::string_view supported) const;

  // Throws InputError "<file>: <path> <what>".
  [[noreturn]] void fail(std::string_view what) const;

 private:
  const nlohmann::json* value_;
  std::string path_;
  const std::string* file_;
};

// Reads and parses a JSON file; a missing file or invalid JSON is an InputError naming the file.
nlohmann::json read_json_file(const std::string& path);

}  // namespace pdsd
