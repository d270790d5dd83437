// Test helper: run a shell command with a time limit, capture stdout+stderr and the exit status.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace pdsd::testing {

struct CommandResult {
  int exit_code = -1;
  std::string output;
};

// `timeout` guarantees that a hung process fails the test instead of hanging the suite.
inline CommandResult run_command(const std::string& command, int timeout_s = 120) {
  std::string wrapped = "timeout -k 5 " + std::to_string(timeout_s) + " " + command + " 2>&1";
  CommandResult result;
  FILE* pipe = ::popen(wrapped.c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 4096> buffer{};
  size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) result.output.append(buffer.data(), n);
  int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

}  // namespace pdsd::testing
