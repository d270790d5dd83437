// Dataset loading: files → records → sampled/truncated → conversations, with the bad-record policy
// and one summary line per dataset (see dataset_loader.h).
#include "worker/data/dataset_loader.h"

#include <algorithm>
#include <random>

#include "common/error.h"
#include "common/job_config.h"
#include "common/log.h"
#include "worker/data/json_records.h"
#include "worker/data/record_format.h"

namespace pdsd::data {

namespace {

// LLaMA-Factory's num_samples: a random permutation cut to n, topped up with random repeats when n
// exceeds the dataset. Same rule, but our own generator: the chosen records differ from
// LLaMA-Factory's (numpy's global RNG), and are stable for a given seed and dataset name.
std::vector<JsonRecord> sample(std::vector<JsonRecord> records, int64_t n, uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a of the name, so datasets do not share a sequence
  for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ull;
  std::mt19937_64 rng(seed ^ h);
  const size_t size = records.size();
  std::vector<size_t> order(size);
  for (size_t i = 0; i < size; ++i) order[i] = i;
  for (size_t i = size; i > 1; --i) std::swap(order[i - 1], order[rng() % i]);  // Fisher-Yates
  std::vector<JsonRecord> out;
  for (size_t i = 0; i < std::min<size_t>(size, n); ++i) out.push_back(records[order[i]]);
  while (size > 0 && out.size() < static_cast<size_t>(n)) out.push_back(records[rng() % size]);
  return out;
}

// LLaMA-Factory reads only mapped columns; a record field with a familiar name that no column maps
// (most often "system" without "columns": {"system": "system"}) is ignored there, and so here — but
// said once, since it is rarely what the author meant.
void warn_unmapped_fields(const DatasetAttr& attr, const std::vector<JsonRecord>& records) {
  const DatasetColumns& c = attr.columns;
  std::vector<std::pair<std::string, std::string>> familiar = {{"system", c.system}, {"tools", c.tools}};
  if (attr.formatting == Formatting::alpaca) familiar.push_back({"history", c.history});
  for (const auto& [field, column] : familiar) {
    bool mapped_elsewhere = field == c.prompt || field == c.query || field == c.response || field == c.history ||
                            field == c.system || field == c.tools || field == c.messages;
    if (!column.empty() || mapped_elsewhere) continue;
    auto has_field = [&](const JsonRecord& r) { return r.value.is_object() && r.value.contains(field); };
    if (std::any_of(records.begin(), records.end(), has_field)) {
      log::warn(attr.info_file, ": dataset '", attr.name, "': some records have a \"", field, "\" field but \"columns\" ",
                "maps no ", field, " column, so it is ignored (as LLaMA-Factory does); to use it add \"columns\": {\"",
                field, "\": \"", field, "\", ...} listing every column");
    }
  }
}

}  // namespace

BadRecordPolicy parse_bad_record_policy(std::string_view text) {
  if (text == "skip") return BadRecordPolicy::skip;
  if (text == "fail") return BadRecordPolicy::fail;
  throw InputError(str("bad-record policy '", text, "' is not skip or fail"));
}

DataOptions DataOptions::from_job_config(const JobConfig& config) {
  DataOptions o;
  o.dataset = config.dataset;
  o.dataset_dir = config.dataset_dir;
  o.max_samples = config.max_samples;
  o.seed = static_cast<uint64_t>(config.seed);
  o.on_bad_record = parse_bad_record_policy(config.on_bad_record);
  return o;
}

size_t LoadedData::skipped() const {
  size_t n = 0;
  for (const auto& d : datasets) n += d.skipped;
  return n;
}

DatasetReport load_dataset(const DatasetAttr& attr, const DataOptions& options, std::vector<Conversation>& out) {
  std::vector<JsonRecord> records;
  for (const auto& file : dataset_files(attr.path)) {
    auto more = read_json_records(file);
    records.insert(records.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
  }
  if (attr.num_samples) records = sample(std::move(records), *attr.num_samples, options.seed, attr.name);
  if (options.max_samples >= 0 && records.size() > static_cast<size_t>(options.max_samples)) {
    records.resize(options.max_samples);
  }
  warn_unmapped_fields(attr, records);

  DatasetReport report{.name = attr.name, .path = attr.path, .records = records.size()};
  for (const auto& record : records) {
    try {
      out.push_back(conversation_from_record(record, attr));
      ++report.kept;
    } catch (const BadRecordError& e) {
      if (options.on_bad_record == BadRecordPolicy::fail) throw;
      ++report.skipped;
      if (report.first_skip_reasons.size() < DatasetReport::kMaxReasons) report.first_skip_reasons.push_back(e.what());
    }
  }
  if (report.skipped > 0) {
    std::string reasons;
    for (const auto& r : report.first_skip_reasons) reasons += "\n  " + r;
    log::warn("dataset '", attr.name, "': skipped ", report.skipped, " bad record(s) of ", report.records,
              report.skipped > report.first_skip_reasons.size() ? "; the first ones:" : ":", reasons);
  }
  log::info("dataset '", attr.name, "' (", attr.path, "): ", report.kept, " conversations");
  return report;
}

LoadedData load_datasets(const DataOptions& options) {
  LoadedData data;
  for (const auto& attr : read_dataset_info(options.dataset_dir, options.dataset)) {
    data.datasets.push_back(load_dataset(attr, options, data.conversations));
  }
  if (data.conversations.empty()) {
    std::string reasons;
    for (const auto& d : data.datasets) {
      for (const auto& r : d.first_skip_reasons) reasons += "\n  " + r;
    }
    throw InputError(str("datasets '", options.dataset, "' in ", options.dataset_dir, " have no usable records",
                         reasons.empty() ? "" : "; skipped ones include:", reasons));
  }
  return data;
}

}  // namespace pdsd::data
