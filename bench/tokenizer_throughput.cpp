// Tokenizer throughput: pdsd's tokenizer against HF tokenizers, one thread each, on the same corpus.
//
//   build/bin/pdsd-bench-tokenizer [--mb 20] [--kind mixed|english_code] [--python .venv/bin/python]
//                                  [NAME=tokenizer.json ...]
//
// The corpus is about --mb MB of documents written once by bench/tokenizer_throughput.py from
// tests/peer/text_samples.py: "mixed" (the default) draws on everything the tests use (Chinese,
// English, code, emoji, whitespace runs, digits, many scripts, random code points);
// "english_code" on English prose and Python source only.
// For each tokenizer (by default the Qwen2-, Llama 3- and Llama 2-style test files) it times
// encode(doc) over every document on one thread, then has the Python side do the same with
// Tokenizer.encode (RAYON_NUM_THREADS=1, no encode_batch) and checks that every document got the
// same ids (#wrong, as nccl-tests counts wrong elements). Timings cover encoding only, cold caches
// on both sides (a fresh tokenizer, one pass).
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "common/error.h"
#include "worker/tokenizer/tokenizer.h"

#ifndef PDSD_PYTHON
#define PDSD_PYTHON ".venv/bin/python"
#endif

namespace {

struct Options {
  double mb = 20;
  std::string kind = "mixed";
  std::string python = PDSD_PYTHON;
  std::vector<std::pair<std::string, std::string>> tokenizers;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--mb" && i + 1 < argc) {
      o.mb = std::stod(argv[++i]);
    } else if (a == "--kind" && i + 1 < argc) {
      o.kind = argv[++i];
    } else if (a == "--python" && i + 1 < argc) {
      o.python = argv[++i];
    } else if (auto eq = a.find('='); eq != std::string::npos && !a.starts_with("--")) {
      o.tokenizers.emplace_back(a.substr(0, eq), a.substr(eq + 1));
    } else {
      throw pdsd::InputError(
          "usage: pdsd-bench-tokenizer [--mb MB] [--kind mixed|english_code] [--python PATH] [NAME=tokenizer.json ...]"
          " (got '" + a + "')");
    }
  }
  if (o.tokenizers.empty()) {
    o.tokenizers = {{"qwen2", "tests/data/tokenizers/qwen2/tokenizer.json"},
                    {"llama3", "tests/data/tokenizers/llama3/tokenizer.json"},
                    {"llama2", "tests/data/tokenizers/llama2/tokenizer.json"}};
  }
  return o;
}

std::string run(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) throw pdsd::Error("cannot run: " + command);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  if (::pclose(pipe) != 0) throw pdsd::Error("failed: " + command + "\n" + out);
  return out;
}

std::vector<std::vector<int32_t>> read_ids(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::vector<int32_t>> out;
  int32_t n;
  while (in.read(reinterpret_cast<char*>(&n), 4)) {
    std::vector<int32_t> ids(n);
    in.read(reinterpret_cast<char*>(ids.data()), 4 * static_cast<std::streamsize>(n));
    out.push_back(std::move(ids));
  }
  return out;
}

void row(const std::string& name, const char* impl, double mb, double seconds, size_t tokens, double ratio,
         const std::string& wrong) {
  std::printf("%-12s %-6s %8.1f %9.2f %9.2f %12.0f %7.2fx %7s\n", name.c_str(), impl, mb, seconds, mb / seconds,
              tokens / seconds, ratio, wrong.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Options o = parse(argc, argv);
    std::string dir = (std::filesystem::temp_directory_path() / ("pdsd-bench-tokenizer-" + std::to_string(::getpid()))).string();
    std::filesystem::create_directories(dir);
    std::string corpus_path = dir + "/corpus.jsonl";
    run(o.python + " bench/tokenizer_throughput.py corpus " + corpus_path + " --mb " + std::to_string(o.mb) +
        " --kind " + o.kind);
    std::vector<std::string> docs;
    size_t bytes = 0;
    {
      std::ifstream in(corpus_path);
      std::string line;
      while (std::getline(in, line)) {
        docs.push_back(nlohmann::json::parse(line).get<std::string>());
        bytes += docs.back().size();
      }
    }
    double mb = bytes / 1e6;
    std::printf("corpus: %zu documents, %.1f MB (%s); one thread each\n\n", docs.size(), mb,
                o.kind == "mixed" ? "mixed scripts, code, emoji, whitespace" : "English prose and Python code");
    std::printf("%-12s %-6s %8s %9s %9s %12s %8s %7s\n", "tokenizer", "impl", "MB", "seconds", "MB/s", "tokens/s",
                "ratio", "#wrong");
    for (const auto& [name, path] : o.tokenizers) {
      pdsd::Tokenizer tok = pdsd::Tokenizer::from_file(path);
      std::vector<std::vector<int32_t>> ours;
      ours.reserve(docs.size());
      auto t0 = std::chrono::steady_clock::now();
      for (const std::string& d : docs) ours.push_back(tok.encode(d));
      double ours_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      size_t ours_tokens = 0;
      for (const auto& ids : ours) ours_tokens += ids.size();

      std::string ids_path = dir + "/" + name + ".ids";
      auto hf = nlohmann::json::parse(run(o.python + " bench/tokenizer_throughput.py encode " + path + " " +
                                          corpus_path + " " + ids_path));
      double hf_s = hf.at("seconds").get<double>();
      std::vector<std::vector<int32_t>> theirs = read_ids(ids_path);
      size_t wrong = theirs.size() == ours.size() ? 0 : docs.size();
      for (size_t i = 0; i < theirs.size() && i < ours.size(); ++i) wrong += theirs[i] != ours[i];

      row(name, "pdsd", mb, ours_s, ours_tokens, hf_s / ours_s, std::to_string(wrong));
      row(name, "hf", mb, hf_s, hf.at("tokens").get<size_t>(), 1.0, "-");
    }
    std::filesystem::remove_all(dir);
    return 0;
  } catch (const pdsd::InputError& e) {
    std::cerr << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "fatal: " << e.what() << "\n";
    return 1;
  }
}
