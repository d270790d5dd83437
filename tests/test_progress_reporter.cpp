// The worker's progress reporter: reports reach the coordinator (pdsd-ctl status shows them), and
// with no coordinator behind the endpoint, report() never blocks the caller and the reporter still
// shuts down.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <thread>

#include "launcher/control_server.h"
#include "launcher/coordinator_client.h"
#include "launcher/endpoint.h"
#include "worker/control/progress_reporter.h"

namespace {

using std::chrono::seconds;

TEST(ProgressReporter, AbsentOutsidePdsdLaunch) {
  ::unsetenv("PDSD_CONTROL_ENDPOINT");
  EXPECT_EQ(pdsd::ProgressReporter::from_env(0, 0), nullptr);
}

TEST(ProgressReporter, ReportsReachTheCoordinator) {
  pdsd::ControlSecurity security{.token = "progress-token"};
  pdsd::ControlServer server({"127.0.0.1", 0}, security, {.rdzv_id = "job", .min_nodes = 1, .max_nodes = 1});
  pdsd::CoordinatorClient client(server.endpoint().str(), security);
  pdsd::v1::JoinRequest join;
  join.set_rdzv_id("job");
  join.set_agent_id("a");
  join.set_nproc(2);
  join.set_node_rank(-1);
  pdsd::v1::JoinResponse joined;
  ASSERT_TRUE(client.join(join, seconds(10), joined).ok());
  ::setenv("PDSD_CONTROL_ENDPOINT", server.endpoint().str().c_str(), 1);
  ::setenv("PDSD_JOB_TOKEN", "progress-token", 1);
  auto reporter = pdsd::ProgressReporter::from_env(1, 0);
  ASSERT_NE(reporter, nullptr);
  for (int step = 1; step <= 50; ++step) reporter->report(step, 2.0 - step * 0.01, 1234.5);
  pdsd::v1::StatusResponse status;
  for (int i = 0; i < 200; ++i) {  // the sender thread sends the latest report soon
    ASSERT_TRUE(client.status(seconds(10), status).ok());
    if (status.ranks_size() == 2 && status.ranks(1).step() == 50) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ASSERT_EQ(status.ranks_size(), 2);
  EXPECT_EQ(status.ranks(1).step(), 50);
  EXPECT_DOUBLE_EQ(status.ranks(1).loss(), 1.5);
  EXPECT_DOUBLE_EQ(status.ranks(1).tokens_per_s(), 1234.5);
  reporter.reset();
  ::unsetenv("PDSD_CONTROL_ENDPOINT");
}

TEST(ProgressReporter, NoCoordinatorNeverBlocksTraining) {
  // A port with nothing behind it.
  ::setenv("PDSD_CONTROL_ENDPOINT", ("127.0.0.1:" + std::to_string(pdsd::free_port())).c_str(), 1);
  ::setenv("PDSD_JOB_TOKEN", "t", 1);
  auto reporter = pdsd::ProgressReporter::from_env(0, 0);
  ASSERT_NE(reporter, nullptr);
  auto t0 = std::chrono::steady_clock::now();
  for (int step = 0; step < 100000; ++step) reporter->report(step, 1.0, 1.0);
  reporter.reset();
  // Sent one by one with a deadline each, 100000 reports would take minutes; stored, they take milliseconds.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, seconds(20));
  ::unsetenv("PDSD_CONTROL_ENDPOINT");
}

}  // namespace
