// LLaMA-Factory's dataset registry: `<dataset_dir>/dataset_info.json` maps a dataset name to its file
// and to how its records are laid out (formatting, columns, tags). pdsd reads the same file with the
// same semantics, so a LLaMA-Factory data dir works unchanged:
//
//   - "formatting": "alpaca" (default) or "sharegpt" ("openai", a newer LLaMA-Factory name for
//     OpenAI-style messages, is read as sharegpt);
//   - "columns" and "tags" have LLaMA-Factory's defaults when absent — but, as in LLaMA-Factory, once
//     "columns" (or "tags") is given, every column (tag) it does not list is unset. An entry that
//     would therefore train on nothing (no response column, no user tag) is reported here rather
//     than silently yielding no data;
//   - "file_name" is a file or a folder of files of one type, relative to dataset_dir.
//
//   auto attrs = read_dataset_info("data", "alpaca_en_demo,identity");
//
// Entries that name a hub or a script (hf_hub_url, ms_hub_url, om_hub_url, script_url,
// cloud_file_name), preference or KTO data, and multimodal columns are refused with an InputError
// naming dataset_info.json and the entry: pdsd trains SFT on local text files.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pdsd::data {

enum class Formatting { alpaca, sharegpt };

// Record field names. Empty: unset (LLaMA-Factory's None), the field is not read.
struct DatasetColumns {
  std::string prompt = "instruction";  // alpaca
  std::string query = "input";         // alpaca, joined to the prompt with "\n"
  std::string response = "output";     // alpaca
  std::string history;                 // alpaca: [[user, assistant], ...] placed before the prompt
  std::string messages = "conversations";  // sharegpt
  std::string system;
  std::string tools;
};

// sharegpt: which key of a message holds the role and the content, and the role values.
struct DatasetTags {
  std::string role_tag = "from";
  std::string content_tag = "value";
  std::string user_tag = "human";
  std::string assistant_tag = "gpt";
  std::string observation_tag = "observation";
  std::string function_tag = "function_call";
  std::string system_tag = "system";
};

struct DatasetAttr {
  std::string name;        // the key in dataset_info.json
  std::string info_file;   // path of that dataset_info.json, for messages
  std::string file_name;   // as written in the entry
  std::string path;        // dataset_dir / file_name
  Formatting formatting = Formatting::alpaca;
  std::optional<int64_t> num_samples;  // LLaMA-Factory's per-dataset random sample size
  DatasetColumns columns;
  DatasetTags tags;
};

// "a, b,a" → {"a", "b"}: LLaMA-Factory's comma list, whitespace trimmed, empty items and repeats dropped.
std::vector<std::string> split_dataset_names(const std::string& names);

// The entries for `names` (a comma list) from dataset_dir/dataset_info.json, in that order.
// Throws InputError for a missing or malformed dataset_info.json, an unknown name (with a
// did-you-mean), or an entry pdsd cannot read.
std::vector<DatasetAttr> read_dataset_info(const std::string& dataset_dir, const std::string& names);

}  // namespace pdsd::data
