// Reading a dataset's JSON / JSON Lines files into located records (see json_records.h).
#include "worker/data/json_records.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace pdsd::data {

namespace {

std::string extension_of(const fs::path& p) {
  std::string ext = p.extension().string();
  if (!ext.empty() && ext[0] == '.') ext.erase(0, 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
  return ext;
}

void check_readable_type(const fs::path& file) {
  std::string ext = extension_of(file);
  if (ext == "json" || ext == "jsonl") return;
  if (ext == "csv" || ext == "parquet" || ext == "arrow" || ext == "txt") {
    throw InputError(str(file.string(), ": ", ext, " files are not supported yet; pdsd reads .json and .jsonl ",
                         "(convert it, e.g. with pandas: df.to_json(path, orient='records', lines=True))"));
  }
  throw InputError(str(file.string(), ": unknown dataset file type '", ext, "'; pdsd reads .json and .jsonl"));
}

std::string read_whole(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw InputError(str(file, ": cannot open"));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<JsonRecord> parse_array(const std::string& file, const std::string& text) {
  json array;
  try {
    array = json::parse(text);
  } catch (const json::parse_error& e) {
    throw InputError(str(file, ": not valid JSON: ", e.what()));
  }
  if (!array.is_array()) throw InputError(str(file, ": must be a JSON array of records or JSON Lines"));
  std::vector<JsonRecord> records;
  records.reserve(array.size());
  for (size_t i = 0; i < array.size(); ++i) records.push_back({std::move(array[i]), file, i, 0});
  return records;
}

std::vector<JsonRecord> parse_lines(const std::string& file, const std::string& text) {
  std::vector<JsonRecord> records;
  size_t line_no = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    ++line_no;
    std::string_view line(text.data() + start, end - start);
    start = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;  // blank lines are not records
    try {
      records.push_back({json::parse(line), file, records.size(), line_no});
    } catch (const json::parse_error& e) {
      throw InputError(str(file, ": line ", line_no, ": not valid JSON (JSON Lines need one whole record per line): ",
                           e.what()));
    }
  }
  return records;
}

}  // namespace

std::string JsonRecord::describe() const {
  return line > 0 ? str(file, ": record ", index, " (line ", line, ")") : str(file, ": record ", index);
}

std::vector<std::string> dataset_files(const std::string& path) {
  fs::path p(path);
  if (fs::is_regular_file(p)) {
    check_readable_type(p);
    return {p.string()};
  }
  if (!fs::is_directory(p)) throw InputError(str(path, ": dataset file not found"));
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(p)) {
    if (entry.is_regular_file()) files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) throw InputError(str(path, ": dataset folder has no files"));
  for (const auto& f : files) {
    check_readable_type(f);
    if (extension_of(f) != extension_of(files[0])) {
      throw InputError(str(path, ": dataset folder mixes file types (", fs::path(files[0]).filename().string(), ", ",
                           fs::path(f).filename().string(), "); LLaMA-Factory requires one type per folder"));
    }
  }
  return files;
}

std::vector<JsonRecord> read_json_records(const std::string& file) {
  std::string text = read_whole(file);
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);  // a UTF-8 byte-order mark
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return {};
  if (text[first] == '[') return parse_array(file, text);
  return parse_lines(file, text);
}

}  // namespace pdsd::data
