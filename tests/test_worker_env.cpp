// The torchrun environment contract between launcher and worker: what one writes the other reads,
// and malformed values are errors naming the variable.
#include <gtest/gtest.h>

#include <cstdlib>

#include "common/error.h"
#include "common/worker_env.h"

namespace pdsd {
namespace {

class WorkerEnvTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const char* v : {"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR",
                          "MASTER_PORT", "TORCHELASTIC_RESTART_COUNT"}) {
      ::unsetenv(v);
    }
  }
};

TEST_F(WorkerEnvTest, DefaultsToASingleProcess) {
  WorkerEnv env = read_worker_env();
  EXPECT_EQ(env.rank, 0);
  EXPECT_EQ(env.world_size, 1);
}

TEST_F(WorkerEnvTest, RoundTripsThroughVariables) {
  WorkerEnv written;
  written.rank = 5;
  written.local_rank = 1;
  written.world_size = 8;
  written.local_world_size = 4;
  written.group_rank = 1;
  written.master_addr = "10.0.0.7";
  written.master_port = 29501;
  written.restart_count = 2;
  for (const auto& [k, v] : written.to_variables()) ::setenv(k.c_str(), v.c_str(), 1);
  WorkerEnv read = read_worker_env();
  EXPECT_EQ(read.rank, 5);
  EXPECT_EQ(read.local_rank, 1);
  EXPECT_EQ(read.world_size, 8);
  EXPECT_EQ(read.local_world_size, 4);
  EXPECT_EQ(read.group_rank, 1);
  EXPECT_EQ(read.master_addr, "10.0.0.7");
  EXPECT_EQ(read.master_port, 29501);
  EXPECT_EQ(read.restart_count, 2);
}

TEST_F(WorkerEnvTest, MalformedValuesNameTheVariable) {
  ::setenv("WORLD_SIZE", "two", 1);
  EXPECT_THROW(
      {
        try {
          read_worker_env();
        } catch (const InputError& e) {
          EXPECT_NE(std::string(e.what()).find("WORLD_SIZE='two'"), std::string::npos) << e.what();
          throw;
        }
      },
      InputError);
  ::setenv("WORLD_SIZE", "2", 1);
  ::setenv("RANK", "2", 1);
  EXPECT_THROW(read_worker_env(), InputError);
}

}  // namespace
}  // namespace pdsd
