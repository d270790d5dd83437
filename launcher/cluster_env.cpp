#include "launcher/cluster_env.h"

#include <cstdio>
#include <cstdlib>

#include "common/error.h"

namespace pdsd {

namespace {

std::optional<int> int_env(const char* name) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return std::nullopt;
  try {
    size_t used = 0;
    int value = std::stoi(text, &used);
    if (used == std::string(text).size() && value >= 0) return value;
  } catch (const std::exception&) {
  }
  throw InputError(str("environment variable ", name, "='", text, "' must be a non-negative integer"));
}

// `scontrol show hostnames` knows every node-list syntax Slurm has; use it when it is there.
std::optional<std::string> scontrol_first_host(const std::string& nodelist) {
  if (std::system("command -v scontrol >/dev/null 2>&1") != 0) return std::nullopt;
  std::string command = "scontrol show hostnames '" + nodelist + "' 2>/dev/null";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return std::nullopt;
  char line[512] = {};
  bool got = std::fgets(line, sizeof line, pipe) != nullptr;
  ::pclose(pipe);
  std::string host(line);
  while (!host.empty() && (host.back() == '\n' || host.back() == ' ')) host.pop_back();
  if (!got || host.empty()) return std::nullopt;
  return host;
}

}  // namespace

std::string first_host_of_slurm_nodelist(const std::string& nodelist) {
  // The first entry ends at the first comma outside brackets.
  size_t end = 0;
  int depth = 0;
  for (; end < nodelist.size(); ++end) {
    if (nodelist[end] == '[') ++depth;
    else if (nodelist[end] == ']') --depth;
    else if (nodelist[end] == ',' && depth == 0) break;
  }
  // Each bracket group contributes its first value ("node[001-004]" → "node001"; padding kept).
  std::string first = nodelist.substr(0, end), host;
  for (size_t i = 0; i < first.size();) {
    if (first[i] != '[') {
      host += first[i++];
      continue;
    }
    auto close = first.find(']', i);
    if (close == std::string::npos || close == i + 1) throw InputError(str("SLURM_JOB_NODELIST '", nodelist, "': cannot read it"));
    std::string range = first.substr(i + 1, close - i - 1);
    host += range.substr(0, range.find_first_of(",-"));
    i = close + 1;
  }
  if (host.empty()) throw InputError(str("SLURM_JOB_NODELIST '", nodelist, "' names no host"));
  return host;
}

ClusterHints detect_cluster() {
  ClusterHints hints;
  if (std::getenv("SLURM_JOB_ID") != nullptr && std::getenv("SLURM_NODEID") != nullptr) {
    hints.source = "slurm";
    hints.node_rank = int_env("SLURM_NODEID");
    hints.nnodes = int_env("SLURM_NNODES");
    if (!hints.nnodes) hints.nnodes = int_env("SLURM_JOB_NUM_NODES");
    hints.rdzv_id = std::string(std::getenv("SLURM_JOB_ID"));
    const char* nodelist = std::getenv("SLURM_JOB_NODELIST");
    if (nodelist == nullptr) nodelist = std::getenv("SLURM_NODELIST");
    if (nodelist != nullptr && *nodelist != '\0') {
      hints.rdzv_host = scontrol_first_host(nodelist);
      if (!hints.rdzv_host) hints.rdzv_host = first_host_of_slurm_nodelist(nodelist);
    }
  } else if (std::getenv("JOB_COMPLETION_INDEX") != nullptr) {
    hints.source = "kubernetes";
    hints.node_rank = int_env("JOB_COMPLETION_INDEX");
  }
  return hints;
}

}  // namespace pdsd
