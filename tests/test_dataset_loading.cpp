// Datasets as LLaMA-Factory lays them out: dataset_info.json entries (columns, tags, folders,
// num_samples, comma lists, max_samples), alpaca / sharegpt / OpenAI-messages records in JSON and
// JSON Lines, and bad records — each reported with its file, record index and field, skipped and
// counted under `skip`, stopping the load under `fail`.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <set>
#include <unistd.h>

#include "common/job_config.h"
#include "worker/data/dataset_loader.h"
#include "worker/data/json_records.h"

namespace pdsd::data {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kLf = "tests/data/llamafactory";
const std::string kBad = "tests/data/llamafactory/bad";

LoadedData load(const std::string& names, const std::string& dir, int64_t max_samples = -1,
                BadRecordPolicy policy = BadRecordPolicy::skip, uint64_t seed = 42) {
  return load_datasets({.dataset = names, .dataset_dir = dir, .max_samples = max_samples, .on_bad_record = policy,
                        .seed = seed});
}

// The message of the InputError that `fn` throws; fails the test when it throws none.
template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an InputError";
  return "";
}

std::vector<Turn> turns(std::initializer_list<std::string> texts) {
  std::vector<Turn> out;
  for (const auto& t : texts) out.push_back({out.size() % 2 == 0 ? Role::user : Role::assistant, t});
  return out;
}

// A throwaway data dir: dataset_info.json plus files, removed at the end of the test.
class TempDataDir {
 public:
  TempDataDir() {
    static int counter = 0;
    dir_ = fs::temp_directory_path() / ("pdsd-data-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::create_directories(dir_);
  }
  ~TempDataDir() { fs::remove_all(dir_); }
  TempDataDir& file(const std::string& name, const std::string& text) {
    fs::create_directories((dir_ / name).parent_path());
    std::ofstream(dir_ / name) << text;
    return *this;
  }
  TempDataDir& info(const json& entries) { return file("dataset_info.json", entries.dump(1)); }
  std::string path() const { return dir_.string(); }
  std::string operator/(const std::string& name) const { return (dir_ / name).string(); }

 private:
  fs::path dir_;
};

// ---- the shipped example data dir ---------------------------------------------------------------

TEST(DatasetLoading, ShippedExamplesLoadEveryRecord) {
  LoadedData data = load("tiny_alpaca,tiny_sharegpt", "examples/data");
  std::ifstream alpaca_file("examples/data/tiny_alpaca.json"), sharegpt_file("examples/data/tiny_sharegpt.json");
  size_t alpaca = json::parse(alpaca_file).size(), sharegpt = json::parse(sharegpt_file).size();
  ASSERT_EQ(data.datasets.size(), 2u);
  EXPECT_EQ(data.datasets[0].kept, alpaca);
  EXPECT_EQ(data.datasets[1].kept, sharegpt);
  EXPECT_EQ(data.conversations.size(), alpaca + sharegpt);
  EXPECT_EQ(data.skipped(), 0u);

  const Conversation& first = data.conversations[0];
  EXPECT_EQ(first.turns, turns({"What is 50 + 29?", "50 + 29 = 79."}));
  EXPECT_EQ(first.source, "examples/data/tiny_alpaca.json: record 0");
  EXPECT_EQ(data.conversations[1].turns, turns({"Reverse the letters of the word.\nriver", "revir"}));
  // Record 2 has a "system" field, and the entry maps the system column to it.
  EXPECT_EQ(data.conversations[2].system, "Answer in one sentence.");

  const Conversation& chat = data.conversations[alpaca];
  EXPECT_EQ(chat.turns, turns({"Add 3 and 3.", "6", "Now double it.", "12"}));
  EXPECT_EQ(chat.source, "examples/data/tiny_sharegpt.json: record 0");
}

TEST(DatasetLoading, OptionsComeFromTheJobConfigKeys) {
  JobConfig c;
  c.dataset = "a,b";
  c.dataset_dir = "somewhere";
  c.max_samples = 12;
  c.seed = 7;
  DataOptions o = DataOptions::from_job_config(c);
  EXPECT_EQ(o.dataset, "a,b");
  EXPECT_EQ(o.dataset_dir, "somewhere");
  EXPECT_EQ(o.max_samples, 12);
  EXPECT_EQ(o.seed, 7u);
  EXPECT_EQ(o.on_bad_record, BadRecordPolicy::skip);  // LLaMA-Factory drops bad records too
  c.on_bad_record = "fail";  // the job key `on_bad_record`
  EXPECT_EQ(DataOptions::from_job_config(c).on_bad_record, BadRecordPolicy::fail);
}

// ---- LLaMA-Factory-style fixtures ---------------------------------------------------------------

TEST(DatasetLoading, AlpacaWithHistoryAndSystem) {
  LoadedData data = load("alpaca_full", kLf);
  ASSERT_EQ(data.conversations.size(), 4u);
  const auto& c = data.conversations;
  EXPECT_EQ(c[0].system, "You are a calculator.");
  EXPECT_EQ(c[0].turns, turns({"Add 3 and 3.", "6", "Now double it.", "12"}));  // history first; empty input dropped
  EXPECT_EQ(c[1].system, "");
  EXPECT_EQ(c[1].turns, turns({"Reverse the word.\nriver", "revir"}));  // instruction + "\n" + input
  EXPECT_EQ(c[2].turns, turns({"Only an input.", "Fine."}));              // empty instruction: input alone
  EXPECT_EQ(c[3].system, "Count.");
  EXPECT_EQ(c[3].turns, turns({"one", "two", "two", "three", "Continue.\nthree", "four"}));
  EXPECT_EQ(c[3].source, kLf + "/alpaca_history.json: record 3");
}

TEST(DatasetLoading, AlpacaJsonLinesWithDefaultColumns) {
  LoadedData data = load("alpaca_default_columns", kLf);
  ASSERT_EQ(data.conversations.size(), 3u);
  EXPECT_EQ(data.conversations[1].turns, turns({"Capital of Japan?", "Tokyo."}));
  EXPECT_EQ(data.conversations[1].system, "");  // no "columns": the system column is unset
  EXPECT_EQ(data.conversations[1].source, kLf + "/alpaca_plain.jsonl: record 1 (line 2)");
  EXPECT_EQ(data.conversations[2].turns, turns({"Translate\n苹果", "apple"}));
}

TEST(DatasetLoading, SharegptWithCustomTags) {
  LoadedData data = load("sharegpt_custom_tags", kLf);
  ASSERT_EQ(data.conversations.size(), 2u);
  EXPECT_EQ(data.conversations[0].system, "Be polite.");  // a leading system message overrides the column
  EXPECT_EQ(data.conversations[0].turns, turns({"Hi", "Hello!"}));
  EXPECT_EQ(data.conversations[1].system, "Math tutor.");
  EXPECT_EQ(data.conversations[1].turns, turns({"2+2?", "4", "3+3?", "6"}));
}

TEST(DatasetLoading, SharegptWithDefaultTags) {
  LoadedData data = load("sharegpt_default_tags", kLf);
  ASSERT_EQ(data.conversations.size(), 2u);
  EXPECT_EQ(data.conversations[0].system, "Sys.");
  EXPECT_EQ(data.conversations[0].turns, turns({"Q", "A"}));
  EXPECT_EQ(data.conversations[1].system, "");  // "system" field, but no system column mapped
}

TEST(DatasetLoading, OpenAiMessagesJsonLines) {
  LoadedData data = load("openai_messages", kLf);
  ASSERT_EQ(data.conversations.size(), 2u);
  EXPECT_EQ(data.conversations[0].system, "You are terse.");
  EXPECT_EQ(data.conversations[0].turns, turns({"Hi", "Hi."}));
  EXPECT_EQ(data.conversations[1].turns, turns({"A", "B", "C", "D"}));  // an empty tool_calls list is fine
  EXPECT_EQ(data.conversations[1].source, kLf + "/messages.jsonl: record 1 (line 3)");  // blank line 2 skipped
}

TEST(DatasetLoading, FolderOfFilesInNameOrder) {
  LoadedData data = load("sharded_folder", kLf);
  ASSERT_EQ(data.conversations.size(), 3u);
  EXPECT_EQ(data.conversations[0].turns[0].content, "first");
  EXPECT_EQ(data.conversations[1].turns[0].content, "second");
  EXPECT_EQ(data.conversations[2].turns[0].content, "third");
  EXPECT_EQ(data.conversations[2].source, kLf + "/sharded/part-001.jsonl: record 0 (line 1)");
}

TEST(DatasetLoading, NumSamplesTakesEveryRecordThenRepeats) {
  LoadedData a = load("sampled_with_repeats", kLf, -1, BadRecordPolicy::skip, 1);
  ASSERT_EQ(a.conversations.size(), 7u);  // 3 records, num_samples 7
  std::set<std::string> distinct;
  for (size_t i = 0; i < 3; ++i) distinct.insert(a.conversations[i].source);
  EXPECT_EQ(distinct.size(), 3u);  // a permutation first, as LLaMA-Factory: every record is used
  LoadedData b = load("sampled_with_repeats", kLf, -1, BadRecordPolicy::skip, 1);
  EXPECT_EQ(a.conversations, b.conversations);  // stable for a seed
}

TEST(DatasetLoading, CommaListConcatenatesInOrderAndMaxSamplesCutsEachDataset) {
  LoadedData all = load(" alpaca_full , openai_messages,alpaca_full", kLf);  // spaces and repeats as LLaMA-Factory
  ASSERT_EQ(all.datasets.size(), 2u);
  EXPECT_EQ(all.conversations.size(), 4u + 2u);
  EXPECT_EQ(all.conversations[4].system, "You are terse.");

  LoadedData cut = load("alpaca_full,sharegpt_custom_tags", kLf, 1);
  ASSERT_EQ(cut.conversations.size(), 2u);
  EXPECT_EQ(cut.conversations[0].source, kLf + "/alpaca_history.json: record 0");
  EXPECT_EQ(cut.conversations[1].source, kLf + "/sharegpt_custom.json: record 0");
  EXPECT_EQ(cut.datasets[0].records, 1u);
}

TEST(DatasetLoading, HubEntriesAreRefused) {
  std::string e = error_of([] { load("hub_only", kLf); });
  EXPECT_NE(e.find(kLf + "/dataset_info.json: dataset 'hub_only': has \"hf_hub_url\""), std::string::npos) << e;
}

TEST(DatasetLoading, UnknownNameSuggestsTheClosest) {
  std::string e = error_of([] { load("alpaca_ful", kLf); });
  EXPECT_NE(e.find("has no dataset 'alpaca_ful'; did you mean 'alpaca_full'?"), std::string::npos) << e;
}

// ---- bad records: the fixture files under each policy -------------------------------------------

TEST(BadRecords, SkipCountsThemAndKeepsTheFirstReasons) {
  LoadedData data = load("bad_alpaca", kBad);
  const DatasetReport& r = data.datasets.at(0);
  EXPECT_EQ(r.records, 6u);
  EXPECT_EQ(r.kept, 2u);
  EXPECT_EQ(r.skipped, 4u);
  ASSERT_EQ(r.first_skip_reasons.size(), 4u);
  const std::string file = kBad + "/bad_alpaca.json";
  EXPECT_EQ(r.first_skip_reasons[0], file + ": record 1: field 'output': missing (the response to train on)");
  EXPECT_EQ(r.first_skip_reasons[1], file + ": record 2: field 'instruction': expected a string, got number");
  EXPECT_NE(r.first_skip_reasons[2].find(file + ": record 3: field 'history[0]': expected a [user, assistant] pair"),
            std::string::npos);
  EXPECT_EQ(r.first_skip_reasons[3], file + ": record 5: expected a JSON object, got array");
  EXPECT_EQ(data.conversations[1].source, file + ": record 4");
}

TEST(BadRecords, SkipReportsOnlyTheFirstFewOfMany) {
  LoadedData data = load("bad_sharegpt", kBad);
  const DatasetReport& r = data.datasets.at(0);
  EXPECT_EQ(r.records, 10u);
  EXPECT_EQ(r.kept, 2u);
  EXPECT_EQ(r.skipped, 8u);
  ASSERT_EQ(r.first_skip_reasons.size(), DatasetReport::kMaxReasons);
  EXPECT_NE(r.first_skip_reasons[0].find(kBad + "/bad_sharegpt.jsonl: record 1 (line 2): field 'conversations[1].from'"),
            std::string::npos) << r.first_skip_reasons[0];
  EXPECT_NE(r.first_skip_reasons[2].find("record 3 (line 5)"), std::string::npos) << r.first_skip_reasons[2];
}

TEST(BadRecords, FailStopsAtTheFirstWithFileRecordAndField) {
  std::string e = error_of([] { load("bad_alpaca", kBad, -1, BadRecordPolicy::fail); });
  EXPECT_EQ(e, kBad + "/bad_alpaca.json: record 1: field 'output': missing (the response to train on)");
  e = error_of([] { load("good,bad_sharegpt", kBad, -1, BadRecordPolicy::fail); });
  EXPECT_NE(e.find(kBad + "/bad_sharegpt.jsonl: record 1 (line 2): field 'conversations[1].from': two user turns"),
            std::string::npos) << e;
}

TEST(BadRecords, NothingUsableIsAnErrorEvenWhenSkipping) {
  std::string e = error_of([] { load("all_bad", kBad); });
  EXPECT_NE(e.find("have no usable records"), std::string::npos) << e;
  EXPECT_NE(e.find(kBad + "/all_bad.json: record 0: field 'output'"), std::string::npos) << e;
  EXPECT_NE(e.find(kBad + "/all_bad.json: record 1: field 'instruction': missing"), std::string::npos) << e;
  LoadedData mixed = load("good,all_bad", kBad);  // another dataset has usable records: skip and go on
  EXPECT_EQ(mixed.conversations.size(), 1u);
  EXPECT_EQ(mixed.skipped(), 2u);
}

// ---- bad records, one case at a time: record 1 after a good record 0, under both policies ------

struct BadCase {
  const char* name;
  const char* formatting;
  const char* record;    // one JSON line
  const char* expected;  // after "<file>: record 1 (line 2): "
};

const BadCase kBadCases[] = {
    {"alpaca_missing_output", "alpaca", R"({"instruction": "q"})", "field 'output': missing"},
    {"alpaca_null_instruction", "alpaca", R"({"instruction": null, "output": "a"})", "field 'instruction': missing"},
    {"alpaca_output_not_string", "alpaca", R"({"instruction": "q", "output": ["a"]})",
     "field 'output': expected a string, got array"},
    {"alpaca_input_not_string", "alpaca", R"({"instruction": "q", "input": 3, "output": "a"})",
     "field 'input': expected a string, got number"},
    {"alpaca_not_object", "alpaca", R"("just text")", "expected a JSON object, got string"},
    {"sharegpt_missing_messages", "sharegpt", R"({"other": []})", "field 'conversations': missing"},
    {"sharegpt_messages_not_list", "sharegpt", R"({"conversations": "hi"})",
     "field 'conversations': expected a list of messages, got string"},
    {"sharegpt_empty", "sharegpt", R"({"conversations": []})", "field 'conversations': no user or assistant messages"},
    {"sharegpt_only_system", "sharegpt", R"({"conversations": [{"from": "system", "value": "s"}]})",
     "field 'conversations': no user or assistant messages"},
    {"sharegpt_two_users", "sharegpt",
     R"({"conversations": [{"from": "human", "value": "a"}, {"from": "human", "value": "b"}]})",
     "field 'conversations[1].from': two user turns in a row"},
    {"sharegpt_two_assistants", "sharegpt",
     R"({"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}, {"from": "gpt", "value": "c"}]})",
     "field 'conversations[2].from': two assistant turns in a row"},
    {"sharegpt_starts_with_assistant", "sharegpt", R"({"conversations": [{"from": "gpt", "value": "a"}]})",
     "field 'conversations[0].from': the conversation starts with an assistant turn"},
    {"sharegpt_ends_on_user", "sharegpt",
     R"({"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}, {"from": "human", "value": "c"}]})",
     "field 'conversations': ends on a user turn"},
    {"sharegpt_unknown_role", "sharegpt",
     R"({"conversations": [{"from": "human", "value": "a"}, {"from": "assistant", "value": "b"}]})",
     "field 'conversations[1].from': role 'assistant' is neither 'human' (user) nor 'gpt' (assistant)"},
    {"sharegpt_missing_value", "sharegpt", R"({"conversations": [{"from": "human"}]})",
     "field 'conversations[0].value': missing"},
    {"sharegpt_value_not_string", "sharegpt", R"({"conversations": [{"from": "human", "value": {"text": "a"}}]})",
     "field 'conversations[0].value': expected a string, got object"},
    {"sharegpt_message_not_object", "sharegpt", R"({"conversations": ["hi"]})",
     "field 'conversations[0]': expected a message object, got string"},
    {"sharegpt_late_system", "sharegpt",
     R"({"conversations": [{"from": "human", "value": "a"}, {"from": "system", "value": "s"}]})",
     "field 'conversations[1].from': a 'system' (system) message may only come first"},
    {"sharegpt_function_call", "sharegpt",
     R"({"conversations": [{"from": "human", "value": "a"}, {"from": "function_call", "value": "{}"}]})",
     "field 'conversations[1].from': 'function_call': tool-use turns"},
    {"sharegpt_tools_column", "sharegpt_tools",
     R"({"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}], "tools": "[{}]"})",
     "field 'tools': tool descriptions (function calling) are not supported yet"},
};

class BadRecordCase : public ::testing::TestWithParam<BadCase> {
 protected:
  void SetUp() override {
    const BadCase& c = GetParam();
    std::string formatting = c.formatting;
    json entry = {{"file_name", "data.jsonl"}};
    if (formatting != "alpaca") entry["formatting"] = "sharegpt";
    if (formatting == "sharegpt_tools") entry["columns"] = {{"messages", "conversations"}, {"tools", "tools"}};
    std::string good = formatting == "alpaca" ? R"({"instruction": "ok", "output": "fine"})"
                                              : R"({"conversations": [{"from": "human", "value": "ok"}, {"from": "gpt", "value": "fine"}]})";
    dir_.info({{"d", entry}}).file("data.jsonl", good + "\n" + c.record + "\n");
  }
  std::string expected() const { return dir_ / "data.jsonl" + ": record 1 (line 2): " + GetParam().expected; }
  TempDataDir dir_;
};

TEST_P(BadRecordCase, FailNamesFileRecordAndField) {
  std::string e = error_of([&] { load("d", dir_.path(), -1, BadRecordPolicy::fail); });
  EXPECT_EQ(e.rfind(expected(), 0), 0u) << "got:      " << e << "\nexpected: " << expected() << "...";
}

TEST_P(BadRecordCase, SkipDropsItAndSaysWhy) {
  LoadedData data = load("d", dir_.path());
  ASSERT_EQ(data.conversations.size(), 1u);
  EXPECT_EQ(data.conversations[0].source, dir_ / "data.jsonl" + ": record 0 (line 1)");
  ASSERT_EQ(data.datasets[0].first_skip_reasons.size(), 1u);
  EXPECT_EQ(data.datasets[0].first_skip_reasons[0].rfind(expected(), 0), 0u) << data.datasets[0].first_skip_reasons[0];
}

INSTANTIATE_TEST_SUITE_P(Cases, BadRecordCase, ::testing::ValuesIn(kBadCases),
                         [](const auto& info) { return std::string(info.param.name); });

// ---- dataset_info.json and files that cannot be read ---------------------------------------------

std::string info_error(const json& entry, const std::string& file_name = "", const std::string& file_text = "") {
  TempDataDir dir;
  dir.info({{"d", entry}});
  if (!file_name.empty()) dir.file(file_name, file_text);
  return error_of([&] { load("d", dir.path()); });
}

TEST(DatasetInfoErrors, EachNamesTheEntryAndWhatToChange) {
  const json alpaca_line = R"({"instruction": "q", "output": "a"})"_json;
  auto expect_has = [](const std::string& message, const std::string& part) {
    EXPECT_NE(message.find(part), std::string::npos) << message << "\n  should contain: " << part;
  };
  expect_has(info_error({{"file_name", "x.json"}, {"ranking", true}}), "dataset 'd': is a preference dataset");
  expect_has(info_error({{"file_name", "x.json"}, {"formatting", "sharegtp"}}),
             "\"formatting\": 'sharegtp' is not alpaca or sharegpt; did you mean 'sharegpt'?");
  expect_has(info_error({{"file_name", "x.json"}, {"columns", {{"prompt", "instruction"}}}}),
             "\"columns\" does not name the \"response\" column");
  expect_has(info_error({{"file_name", "x.json"}, {"formatting", "sharegpt"}, {"columns", {{"system", "s"}}}}),
             "\"columns\" does not name the \"messages\" column");
  expect_has(info_error({{"file_name", "x.json"}, {"formatting", "sharegpt"},
                         {"tags", {{"role_tag", "role"}, {"content_tag", "content"}}}}),
             "\"tags\" does not give \"user_tag\"");
  expect_has(info_error({{"file_name", "x.json"}, {"columns", {{"response", "output"}, {"prompt", "p"}, {"images", "img"}}}}),
             "multimodal data is not supported");
  expect_has(info_error({{"file_name", 3}}), "\"file_name\" must be a string, got number");
  expect_has(info_error({{"formatting", "alpaca"}}), "needs a \"file_name\"");
  expect_has(info_error({{"file_name", "missing.json"}}), "missing.json: dataset file not found");
  expect_has(info_error({{"file_name", "d.csv"}}, "d.csv", "instruction,output\nq,a\n"),
             "d.csv: csv files are not supported yet");
  expect_has(info_error({{"file_name", "d.jsonl"}}, "d.jsonl", alpaca_line.dump() + "\n{\"instruction\": \n"),
             "d.jsonl: line 2: not valid JSON");
  expect_has(info_error({{"file_name", "d.json"}}, "d.json", "[" + alpaca_line.dump() + ",]"), "d.json: not valid JSON");
}

TEST(DatasetInfoErrors, FolderMixingFileTypes) {
  TempDataDir dir;
  dir.info({{"d", {{"file_name", "parts"}}}}).file("parts/a.json", "[]").file("parts/b.jsonl", "");
  std::string e = error_of([&] { load("d", dir.path()); });
  EXPECT_NE(e.find("mixes file types"), std::string::npos) << e;
}

TEST(DatasetInfoErrors, MissingOrBrokenDatasetInfo) {
  TempDataDir dir;
  std::string e = error_of([&] { load("d", dir.path()); });
  EXPECT_NE(e.find(dir / "dataset_info.json" + ": cannot open"), std::string::npos) << e;
  dir.file("dataset_info.json", "{\"d\": ");
  e = error_of([&] { load("d", dir.path()); });
  EXPECT_NE(e.find(dir / "dataset_info.json" + ": not valid JSON"), std::string::npos) << e;
}

TEST(DatasetInfoErrors, JsonArrayFileWithBomAndOpenAiFormattingName) {
  TempDataDir dir;
  dir.info({{"d", {{"file_name", "d.json"}, {"formatting", "openai"}}}})
      .file("d.json", "\xEF\xBB\xBF[{\"conversations\": [{\"from\": \"human\", \"value\": \"q\"}, "
                      "{\"from\": \"gpt\", \"value\": \"a\"}]}]");
  LoadedData data = load("d", dir.path());
  ASSERT_EQ(data.conversations.size(), 1u);
  EXPECT_EQ(data.conversations[0].turns, turns({"q", "a"}));
}

}  // namespace
}  // namespace pdsd::data
