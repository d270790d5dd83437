// Typed access to tokenizer.json whose errors name the file and the JSON path (see json_field.h).
#include "worker/tokenizer/json_field.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"

namespace pdsd {
namespace {

std::string child_path(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : str(parent, ".", key);
}

const char* kind(const nlohmann::json& j) {
  if (j.is_null()) return "null";
  if (j.is_boolean()) return "a boolean";
  if (j.is_number()) return "a number";
  if (j.is_string()) return "a string";
  if (j.is_array()) return "an array";
  return "an object";
}

}  // namespace

void JsonField::fail(std::string_view what) const {
  throw InputError(str(*file_, ": ", path_.empty() ? "(top level)" : path_, " ", what));
}

void JsonField::unsupported_type(std::string_view supported) const {
  at("type").fail(str("\"", type(), "\" is not supported (", supported, ")"));
}

JsonField JsonField::at(std::string_view key) const {
  if (!value_->is_object()) fail(str("must be an object, found ", kind(*value_)));
  auto it = value_->find(key);
  if (it == value_->end()) JsonField(*value_, child_path(path_, key), *file_).fail("is missing");
  if (it->is_null()) JsonField(*value_, child_path(path_, key), *file_).fail("is null");
  return JsonField(*it, child_path(path_, key), *file_);
}

std::optional<JsonField> JsonField::find(std::string_view key) const {
  if (!value_->is_object()) fail(str("must be an object, found ", kind(*value_)));
  auto it = value_->find(key);
  if (it == value_->end() || it->is_null()) return std::nullopt;
  return JsonField(*it, child_path(path_, key), *file_);
}

JsonField JsonField::operator[](size_t i) const {
  if (!value_->is_array()) fail(str("must be an array, found ", kind(*value_)));
  return JsonField((*value_)[i], str(path_, "[", i, "]"), *file_);
}

size_t JsonField::size() const {
  if (!value_->is_array() && !value_->is_object()) fail(str("must be an array, found ", kind(*value_)));
  return value_->size();
}

std::string JsonField::as_string() const {
  if (!value_->is_string()) fail(str("must be a string, found ", kind(*value_)));
  return value_->get<std::string>();
}

bool JsonField::as_bool() const {
  if (!value_->is_boolean()) fail(str("must be true or false, found ", kind(*value_)));
  return value_->get<bool>();
}

int64_t JsonField::as_int() const {
  if (!value_->is_number_integer()) fail(str("must be an integer, found ", kind(*value_)));
  return value_->get<int64_t>();
}

double JsonField::as_number() const {
  if (!value_->is_number()) fail(str("must be a number, found ", kind(*value_)));
  return value_->get<double>();
}

bool JsonField::bool_or(std::string_view key, bool fallback) const {
  auto f = find(key);
  return f ? f->as_bool() : fallback;
}

std::optional<std::string> JsonField::string_or_null(std::string_view key) const {
  auto f = find(key);
  if (!f) return std::nullopt;
  return f->as_string();
}

nlohmann::json read_json_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw InputError(str(path, ": is a folder, not a JSON file"));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(str(path, ": cannot open the file"));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  try {
    return nlohmann::json::parse(buffer.str());
  } catch (const nlohmann::json::parse_error& e) {
    // e.what() reads "[json.exception.parse_error.101] parse error at line 3, column 1: ..."
    std::string detail = e.what();
    if (auto p = detail.find("] "); p != std::string::npos) detail = detail.substr(p + 2);
    throw InputError(str(path, ": not valid JSON (", detail, ")"));
  }
}

}  // namespace pdsd
