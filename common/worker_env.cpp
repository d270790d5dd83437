#include "common/worker_env.h"

#include <charconv>
#include <cstdlib>
#include <cstring>

#include "common/error.h"

namespace pdsd {

namespace {
int int_var(const char* name, int fallback, int min) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  int value = 0;
  auto [end, ec] = std::from_chars(text, text + std::strlen(text), value);
  if (ec != std::errc() || *end != '\0' || value < min) {
    throw InputError(str("environment variable ", name, "='", text, "' must be an integer >= ", min));
  }
  return value;
}
}  // namespace

std::map<std::string, std::string> WorkerEnv::to_variables() const {
  return {{"RANK", std::to_string(rank)},
          {"LOCAL_RANK", std::to_string(local_rank)},
          {"WORLD_SIZE", std::to_string(world_size)},
          {"LOCAL_WORLD_SIZE", std::to_string(local_world_size)},
          {"GROUP_RANK", std::to_string(group_rank)},
          {"MASTER_ADDR", master_addr},
          {"MASTER_PORT", std::to_string(master_port)},
          {"TORCHELASTIC_RESTART_COUNT", std::to_string(restart_count)}};
}

WorkerEnv read_worker_env() {
  WorkerEnv env;
  env.world_size = int_var("WORLD_SIZE", 1, 1);
  env.rank = int_var("RANK", 0, 0);
  env.local_world_size = int_var("LOCAL_WORLD_SIZE", env.world_size, 1);
  env.local_rank = int_var("LOCAL_RANK", env.rank, 0);
  env.group_rank = int_var("GROUP_RANK", 0, 0);
  env.master_port = int_var("MASTER_PORT", env.master_port, 1);
  env.restart_count = int_var("TORCHELASTIC_RESTART_COUNT", 0, 0);
  if (const char* addr = std::getenv("MASTER_ADDR"); addr != nullptr && *addr != '\0') env.master_addr = addr;
  if (env.rank >= env.world_size) {
    throw InputError(str("environment: RANK=", env.rank, " is not below WORLD_SIZE=", env.world_size));
  }
  if (env.local_rank >= env.local_world_size) {
    throw InputError(str("environment: LOCAL_RANK=", env.local_rank, " is not below LOCAL_WORLD_SIZE=", env.local_world_size));
  }
  return env;
}

}  // namespace pdsd
