// Loading a Hugging Face model dir: the shipped tiny Qwen2 loads (single file and sharded), and each
// kind of damage — truncated file, bad header, wrong shape, missing or extra tensor — is an error
// that names the file and the tensor.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "worker/model_config.h"
#include "worker/model_weights.h"

namespace fs = std::filesystem;

namespace pdsd {
namespace {

const fs::path kTiny = fs::path(PDSD_SOURCE_DIR) / "examples" / "tiny-qwen2";

fs::path copy_tiny(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("pdsd-test-weights-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(kTiny)) fs::copy_file(e.path(), dir / e.path().filename());
  return dir;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_bytes(const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }

// Splits a safetensors file into its JSON header and data section.
std::pair<nlohmann::json, std::string> split(const std::string& bytes) {
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  return {nlohmann::json::parse(bytes.substr(8, n)), bytes.substr(8 + n)};
}

std::string join(const nlohmann::json& header, const std::string& data) {
  std::string h = header.dump();
  uint64_t n = h.size();
  return std::string(reinterpret_cast<const char*>(&n), 8) + h + data;
}

std::string load_error(const fs::path& dir) {
  try {
    load_model_weights(dir.string(), read_model_config(dir.string()));
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an InputError for " << dir;
  return "";
}

TEST(ModelWeightsLoading, TinyQwen2LoadsWithTheExpectedTensors) {
  ModelConfig config = read_model_config(kTiny.string());
  EXPECT_EQ(config.model_type, "qwen2");
  EXPECT_EQ(config.num_key_value_heads, 2);
  EXPECT_DOUBLE_EQ(config.rope_theta, 1e6);  // from rope_parameters (transformers 5 layout)
  EXPECT_TRUE(config.tie_word_embeddings);
  ModelWeights w = load_model_weights(kTiny.string(), config);
  EXPECT_EQ(w.tensors.size(), config.expected_weights().size());
  EXPECT_EQ(w.tensors.at("model.layers.1.self_attn.k_proj.bias").sizes(), at::IntArrayRef({32}));
  // Views point into the mapping: no copy of the weights was made.
  for (const auto& entry : w.files[0]->entries()) {
    EXPECT_EQ(w.tensors.at(entry.name).data_ptr(), static_cast<const void*>(w.files[0]->data(entry))) << entry.name;
  }
  int64_t total = 0;
  for (const auto& [name, t] : w.tensors) total += t.numel();
  EXPECT_EQ(total, config.parameter_count());
}

TEST(ModelWeightsLoading, ShardedCheckpointWithIndex) {
  auto dir = copy_tiny("sharded");
  auto [header, data] = split(read_bytes(dir / "model.safetensors"));
  fs::remove(dir / "model.safetensors");
  nlohmann::json shard[2] = {nlohmann::json::object(), nlohmann::json::object()};
  std::string shard_data[2];
  nlohmann::json index = {{"metadata", {{"total_size", data.size()}}}, {"weight_map", nlohmann::json::object()}};
  int i = 0;
  for (auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    int s = (i++) % 2;
    uint64_t b = info["data_offsets"][0], e = info["data_offsets"][1];
    nlohmann::json entry = info;
    entry["data_offsets"] = {shard_data[s].size(), shard_data[s].size() + (e - b)};
    shard_data[s] += data.substr(b, e - b);
    shard[s][name] = entry;
    index["weight_map"][name] = "model-0000" + std::to_string(s + 1) + "-of-00002.safetensors";
  }
  for (int s = 0; s < 2; ++s) write_bytes(dir / ("model-0000" + std::to_string(s + 1) + "-of-00002.safetensors"), join(shard[s], shard_data[s]));
  std::ofstream(dir / "model.safetensors.index.json") << index.dump();
  ModelConfig config = read_model_config(dir.string());
  ModelWeights sharded = load_model_weights(dir.string(), config);
  ModelWeights single = load_model_weights(kTiny.string(), config);
  EXPECT_EQ(sharded.files.size(), 2u);
  for (const auto& [name, t] : single.tensors) EXPECT_TRUE(at::equal(t, sharded.tensors.at(name))) << name;
  fs::remove_all(dir);
}

TEST(ModelWeightsLoading, TruncatedFileNamesFileAndTensor) {
  auto dir = copy_tiny("truncated");
  std::string bytes = read_bytes(dir / "model.safetensors");
  write_bytes(dir / "model.safetensors", bytes.substr(0, bytes.size() - 1000));
  std::string e = load_error(dir);
  EXPECT_NE(e.find("model.safetensors: tensor '"), std::string::npos) << e;
  EXPECT_NE(e.find("truncated or corrupt"), std::string::npos) << e;
  fs::remove_all(dir);
}

TEST(ModelWeightsLoading, BadHeaderIsReported) {
  auto dir = copy_tiny("badheader");
  std::string bytes = read_bytes(dir / "model.safetensors");
  bytes[8] = '#';  // the opening brace of the JSON header
  write_bytes(dir / "model.safetensors", bytes);
  std::string e = load_error(dir);
  EXPECT_NE(e.find("model.safetensors: bad header: not valid JSON"), std::string::npos) << e;
  write_bytes(dir / "model.safetensors", std::string("\xff\xff\xff\xff\xff\xff\x00\x00{}", 10));
  e = load_error(dir);
  EXPECT_NE(e.find("bad header: it claims"), std::string::npos) << e;
  fs::remove_all(dir);
}

TEST(ModelWeightsLoading, ShapeMismatchNamesTheTensor) {
  auto dir = copy_tiny("shape");
  nlohmann::json config = nlohmann::json::parse(read_bytes(dir / "config.json"));
  config["intermediate_size"] = 128;
  std::ofstream(dir / "config.json") << config.dump();
  std::string e = load_error(dir);
  EXPECT_NE(e.find("tensor 'model.layers.0.mlp.gate_proj.weight' has shape [176, 64] but config.json implies [128, 64]"),
            std::string::npos) << e;
  fs::remove_all(dir);
}

TEST(ModelWeightsLoading, MissingAndExtraTensors) {
  auto dir = copy_tiny("missing");
  nlohmann::json config = nlohmann::json::parse(read_bytes(dir / "config.json"));
  config["num_hidden_layers"] = 3;
  std::ofstream(dir / "config.json") << config.dump();
  std::string e = load_error(dir);
  EXPECT_NE(e.find("tensor 'model.layers.2.input_layernorm.weight' is missing"), std::string::npos) << e;
  config["num_hidden_layers"] = 1;
  std::ofstream(dir / "config.json") << config.dump();
  e = load_error(dir);
  EXPECT_NE(e.find("tensor 'model.layers.1."), std::string::npos) << e;
  EXPECT_NE(e.find("is not part of a qwen2 model"), std::string::npos) << e;
  fs::remove_all(dir);
}

TEST(ModelWeightsLoading, UnsupportedModelType) {
  auto dir = copy_tiny("type");
  nlohmann::json config = nlohmann::json::parse(read_bytes(dir / "config.json"));
  config["model_type"] = "gpt2";
  std::ofstream(dir / "config.json") << config.dump();
  std::string e = load_error(dir);
  EXPECT_NE(e.find("config.json: model_type \"gpt2\" is not supported"), std::string::npos) << e;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace pdsd
