// The worker's CPU operator threads: one for a GPU worker unless the user set OMP_NUM_THREADS (the
// launcher's default does not count as the user's), the launcher's share for a CPU worker.
#include <gtest/gtest.h>

#include "common/host_threads.h"

namespace pdsd {
namespace {

TEST(HostThreads, GpuWorkerUsesOneThreadUnlessTheUserChose) {
  EXPECT_EQ(host_operator_threads(true, nullptr, nullptr), 1);        // run without the launcher
  EXPECT_EQ(host_operator_threads(true, "16", "1"), 1);               // the launcher's cores / nproc
  EXPECT_EQ(host_operator_threads(true, "16", nullptr), std::nullopt);  // the user's OMP_NUM_THREADS
  EXPECT_EQ(host_operator_threads(true, "4", "0"), std::nullopt);
}

TEST(HostThreads, CpuWorkerKeepsItsShareOfTheCores) {
  EXPECT_EQ(host_operator_threads(false, "16", "1"), std::nullopt);
  EXPECT_EQ(host_operator_threads(false, nullptr, nullptr), std::nullopt);
}

}  // namespace
}  // namespace pdsd
