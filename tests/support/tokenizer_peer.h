// Test helper: runs tests/peer/tokenizer_cases.py with the reference Python (PDSD_PYTHON, the venv
// with HF tokenizers) into a fresh temporary folder, and reads JSON Lines back.
//
// A missing Python or a failing script is a test failure with the command's output, never a skip:
// the peer tests exist to compare, and a comparison that did not run must not pass.
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "tests/support/run_command.h"
#include "tests/support/temp_dir.h"

#ifndef PDSD_PYTHON
#error "PDSD_PYTHON must name the reference Python (set by tests/CMakeLists.txt)"
#endif

namespace pdsd::testing {

// Runs the peer script with `args` (from the repository root, where tests run); returns "" on
// success or a message saying what went wrong.
inline std::string run_tokenizer_peer(const std::string& args, int timeout_s = 600) {
  std::string python = PDSD_PYTHON;
  if (::access(python.c_str(), X_OK) != 0)
    return "the reference Python " + python + " is missing: run scripts/setup.sh (it makes .venv with HF tokenizers)";
  CommandResult r = run_command(python + " tests/peer/tokenizer_cases.py " + args, timeout_s);
  if (r.exit_code != 0)
    return "tests/peer/tokenizer_cases.py failed (exit " + std::to_string(r.exit_code) + "):\n" + r.output;
  return "";
}

inline std::vector<nlohmann::json> read_json_lines(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

}  // namespace pdsd::testing
