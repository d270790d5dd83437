// Records from a dataset's JSON files, each with where it came from, so that every later complaint
// about a record can name the file and the record.
//
// A file is either one JSON array of records or JSON Lines (one record per line) — told apart by its
// first character, whatever the extension (.json or .jsonl), as the `datasets` library that
// LLaMA-Factory uses accepts both in either. A folder is read as all its files in name order; they
// must share one extension, as LLaMA-Factory requires.
//
//   for (const JsonRecord& r : read_json_records("data/alpaca.jsonl")) use(r.value, r.describe());
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace pdsd::data {

struct JsonRecord {
  nlohmann::json value;
  std::string file;
  size_t index = 0;  // 0-based position in the file (what `jq '.[i]'` or Python's dataset[i] shows)
  size_t line = 0;   // 1-based line for JSON Lines; 0 inside a JSON array

  // "data/x.jsonl: record 3 (line 5)" or "data/x.json: record 3".
  std::string describe() const;
};

// The files a dataset path stands for: the file itself, or a folder's files sorted by name.
// Throws InputError if the path does not exist, a folder is empty or mixes file types, or the
// type is not JSON/JSON Lines (LLaMA-Factory also reads csv, parquet, arrow and txt; pdsd does not).
std::vector<std::string> dataset_files(const std::string& path);

// Every record of one file. Throws InputError with the file and the line for text that is not JSON.
std::vector<JsonRecord> read_json_records(const std::string& file);

}  // namespace pdsd::data
