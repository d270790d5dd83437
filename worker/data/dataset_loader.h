// Loads the job's datasets — `dataset: a,b` from `dataset_dir`'s dataset_info.json — into one list of
// conversations, as LLaMA-Factory does for SFT: each dataset in the order named, optionally sampled
// (the entry's num_samples) and then cut to its first `max_samples` records, then concatenated.
//
// Bad records: LLaMA-Factory drops them with a log line. Here the policy says what happens:
//   skip — drop it, count it, and report the count and the first few reasons (file, record, field);
//   fail — stop at the first one with an InputError that names the file, the record and the field.
//
//   LoadedData data = load_datasets({.dataset = "alpaca_en_demo,identity", .dataset_dir = "data"});
//   for (const auto& d : data.datasets) log::info(d.name, ": ", d.kept, " conversations");
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "worker/data/conversation.h"
#include "worker/data/dataset_info.h"

namespace pdsd {
struct JobConfig;
}

namespace pdsd::data {

enum class BadRecordPolicy { skip, fail };

// "skip" | "fail"; throws InputError otherwise.
BadRecordPolicy parse_bad_record_policy(std::string_view text);

struct DataOptions {
  std::string dataset;               // comma-separated names from dataset_info.json
  std::string dataset_dir = "data";
  int64_t max_samples = -1;          // per dataset, the first N records (bad ones included); -1: all
  BadRecordPolicy on_bad_record = BadRecordPolicy::skip;
  uint64_t seed = 42;                // for entries with num_samples

  static DataOptions from_job_config(const JobConfig& config);
};

// What became of one dataset.
struct DatasetReport {
  std::string name;
  std::string path;
  size_t records = 0;   // records considered (after num_samples and max_samples)
  size_t kept = 0;
  size_t skipped = 0;
  std::vector<std::string> first_skip_reasons;  // up to kMaxReasons, each naming file, record and field
  static constexpr size_t kMaxReasons = 5;
};

struct LoadedData {
  std::vector<Conversation> conversations;  // every dataset's, in the order named
  std::vector<DatasetReport> datasets;
  size_t skipped() const;
};

// Throws InputError for a bad dataset_info.json or file, for the first bad record under `fail`, and
// when no record at all is usable.
LoadedData load_datasets(const DataOptions& options);

// One dataset (already looked up); used by load_datasets and by tests.
DatasetReport load_dataset(const DatasetAttr& attr, const DataOptions& options, std::vector<Conversation>& out);

}  // namespace pdsd::data
