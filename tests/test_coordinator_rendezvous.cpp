// The coordinator's job semantics over real gRPC on loopback, with agents played by threads:
// rendezvous (rank assignment, MIN:MAX with a last call, a join timeout naming who is there, a taken
// node rank refused), a failure moving every node to the next attempt together with the same root
// cause, the restart budget, a silent agent declared lost, checkpoint and stop orders, and worker
// progress in the status. Waits poll against generous deadlines: nothing here is a timing test.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "launcher/control_server.h"
#include "launcher/coordinator_client.h"

namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
const pdsd::ControlSecurity kSecurity{.token = "rendezvous-test-token"};

pdsd::v1::JoinRequest join_request(const std::string& id, int nproc, int node_rank = -1) {
  pdsd::v1::JoinRequest r;
  r.set_rdzv_id("job");
  r.set_agent_id(id);
  r.set_hostname("host-" + id);
  r.set_nproc(nproc);
  r.set_node_rank(node_rank);
  r.set_pid(100);
  return r;
}

struct Job {
  explicit Job(pdsd::CoordinatorOptions o) : server({"127.0.0.1", 0}, kSecurity, [&] { o.rdzv_id = "job"; return o; }()) {}
  pdsd::CoordinatorClient client() { return pdsd::CoordinatorClient(server.endpoint().str(), kSecurity); }
  pdsd::ControlServer server;
};

// Joins `n` agents concurrently; returns their answers in order.
std::vector<pdsd::v1::JoinResponse> join_all(Job& job, const std::vector<pdsd::v1::JoinRequest>& requests) {
  std::vector<std::future<pdsd::v1::JoinResponse>> futures;
  for (const auto& r : requests) {
    futures.push_back(std::async(std::launch::async, [&job, r] {
      pdsd::v1::JoinResponse out;
      auto s = job.client().join(r, seconds(30), out);
      EXPECT_TRUE(s.ok()) << pdsd::describe(s);
      return out;
    }));
  }
  std::vector<pdsd::v1::JoinResponse> out;
  for (auto& f : futures) out.push_back(f.get());
  return out;
}

// Both agents pass the barrier of `attempt`.
std::vector<pdsd::v1::StartAttemptResponse> start_all(Job& job, const std::vector<std::string>& agents, int attempt) {
  std::vector<std::future<pdsd::v1::StartAttemptResponse>> futures;
  for (const auto& a : agents) {
    futures.push_back(std::async(std::launch::async, [&job, a, attempt] {
      pdsd::v1::StartAttemptResponse out;
      auto s = job.client().start_attempt(a, attempt, seconds(30), out);
      EXPECT_TRUE(s.ok()) << pdsd::describe(s);
      return out;
    }));
  }
  std::vector<pdsd::v1::StartAttemptResponse> out;
  for (auto& f : futures) out.push_back(f.get());
  return out;
}

pdsd::v1::HeartbeatResponse heartbeat(Job& job, const std::string& agent, int attempt = 0) {
  pdsd::v1::HeartbeatResponse out;
  auto s = job.client().heartbeat(agent, attempt, seconds(10), out);
  EXPECT_TRUE(s.ok()) << pdsd::describe(s);
  return out;
}

TEST(CoordinatorRendezvous, AgentsGetNodeRanksAndGlobalRankOffsets) {
  Job job({.min_nodes = 3, .max_nodes = 3});
  // b asks for node rank 0; a and c are assigned the rest in join order.
  auto answers = join_all(job, {join_request("a", 2), join_request("b", 3, 0), join_request("c", 1)});
  EXPECT_EQ(answers[1].node_rank(), 0);
  EXPECT_EQ(answers[1].rank_offset(), 0);
  std::set<int> ranks;
  for (const auto& a : answers) {
    EXPECT_EQ(a.nnodes(), 3);
    EXPECT_EQ(a.world_size(), 6);
    ranks.insert(a.node_rank());
  }
  EXPECT_EQ(ranks, (std::set<int>{0, 1, 2}));
  // Offsets follow node ranks: node 0 has 3 workers, so the next node starts at 3.
  const auto& second = answers[0].node_rank() == 1 ? answers[0] : answers[2];
  EXPECT_EQ(second.rank_offset(), 3);
}

TEST(CoordinatorRendezvous, MinMaxClosesAfterTheLastCall) {
  Job job({.min_nodes = 2, .max_nodes = 4, .last_call_s = 0.3});
  auto answers = join_all(job, {join_request("a", 1), join_request("b", 1)});
  EXPECT_EQ(answers[0].nnodes(), 2);
  EXPECT_EQ(answers[0].world_size(), 2);
  // A late agent cannot join a closed rendezvous.
  pdsd::v1::JoinResponse late;
  auto s = job.client().join(join_request("late", 1), seconds(10), late);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("already closed"), std::string::npos) << s.error_message();
}

TEST(CoordinatorRendezvous, JoinTimeoutNamesWhoJoined) {
  Job job({.min_nodes = 2, .max_nodes = 2, .join_timeout_s = 0.3});
  pdsd::v1::JoinResponse out;
  auto s = job.client().join(join_request("lonely", 1), seconds(10), out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_NE(s.error_message().find("1 of 2 node(s) joined (host-lonely"), std::string::npos) << s.error_message();
}

TEST(CoordinatorRendezvous, ATakenNodeRankOrAnotherJobIsRefused) {
  Job job({.min_nodes = 2, .max_nodes = 2, .join_timeout_s = 5});
  auto first = std::async(std::launch::async, [&] {
    pdsd::v1::JoinResponse out;
    return job.client().join(join_request("a", 1, 1), seconds(10), out);
  });
  // Wait until a is in (status lists it), then claim its rank.
  for (int i = 0; i < 200; ++i) {
    pdsd::v1::StatusResponse st;
    if (job.client().status(seconds(5), st).ok() && st.nodes_size() == 1) break;
    std::this_thread::sleep_for(milliseconds(20));
  }
  pdsd::v1::JoinResponse out;
  auto s = job.client().join(join_request("b", 1, 1), seconds(10), out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_NE(s.error_message().find("taken by host-a"), std::string::npos) << s.error_message();
  auto other = join_request("c", 1);
  other.set_rdzv_id("another-job");
  s = job.client().join(other, seconds(10), out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  // Complete the rendezvous so the first join returns.
  s = job.client().join(join_request("d", 1), seconds(10), out);
  EXPECT_TRUE(s.ok()) << pdsd::describe(s);
  EXPECT_TRUE(first.get().ok());
}

TEST(CoordinatorRendezvous, AFailureRestartsEveryNodeTogetherWithinMaxRestarts) {
  Job job({.min_nodes = 2, .max_nodes = 2, .max_restarts = 1});
  join_all(job, {join_request("a", 2), join_request("b", 2)});
  auto started = start_all(job, {"a", "b"}, 0);
  ASSERT_TRUE(started[0].start() && started[1].start());
  EXPECT_EQ(started[0].master_port(), started[1].master_port());
  const int first_port = started[0].master_port();

  pdsd::v1::WorkersExitRequest failure;
  failure.set_agent_id("b");
  failure.set_attempt(0);
  failure.set_outcome(pdsd::v1::WORKERS_FAILED);
  failure.mutable_failure()->set_rank(3);
  failure.mutable_failure()->set_description("exit code 7");
  failure.mutable_failure()->set_exit_code(7);
  failure.mutable_failure()->add_last_lines("boom");
  pdsd::v1::WorkersExitResponse decision;
  ASSERT_TRUE(job.client().report_exit(failure, seconds(10), decision).ok());
  EXPECT_EQ(decision.state(), pdsd::v1::JOB_RESTARTING);
  EXPECT_EQ(decision.attempt(), 1);
  // The other node hears the same: stop, next attempt, root cause rank 3 on host-b.
  auto orders = heartbeat(job, "a");
  EXPECT_EQ(orders.attempt(), 1);
  EXPECT_EQ(orders.root_cause().rank(), 3);
  EXPECT_EQ(orders.root_cause().hostname(), "host-b");
  EXPECT_EQ(orders.root_cause().last_lines(0), "boom");
  // A second failure report (a victim of the stop) changes nothing.
  failure.set_agent_id("a");
  failure.mutable_failure()->set_rank(0);
  ASSERT_TRUE(job.client().report_exit(failure, seconds(10), decision).ok());
  EXPECT_EQ(decision.root_cause().rank(), 3);

  started = start_all(job, {"a", "b"}, 1);
  ASSERT_TRUE(started[0].start() && started[1].start());
  EXPECT_EQ(started[0].attempt(), 1);
  EXPECT_NE(started[0].master_port(), 0);
  (void)first_port;  // a fresh free port; it may equal the old one by chance, so no comparison
  pdsd::v1::StatusResponse status;
  ASSERT_TRUE(job.client().status(seconds(10), status).ok());
  EXPECT_EQ(status.restart_count(), 1);
  EXPECT_EQ(status.state(), pdsd::v1::JOB_RUNNING);

  failure.set_attempt(1);
  ASSERT_TRUE(job.client().report_exit(failure, seconds(10), decision).ok());
  EXPECT_EQ(decision.state(), pdsd::v1::JOB_FAILED);
  EXPECT_NE(decision.reason().find("no restarts left"), std::string::npos) << decision.reason();
}

TEST(CoordinatorRendezvous, SuccessNeedsEveryNode) {
  Job job({.min_nodes = 2, .max_nodes = 2});
  join_all(job, {join_request("a", 1), join_request("b", 1)});
  start_all(job, {"a", "b"}, 0);
  pdsd::v1::WorkersExitRequest done;
  done.set_attempt(0);
  done.set_outcome(pdsd::v1::WORKERS_SUCCEEDED);
  pdsd::v1::WorkersExitResponse decision;
  done.set_agent_id("a");
  ASSERT_TRUE(job.client().report_exit(done, seconds(10), decision).ok());
  EXPECT_EQ(decision.state(), pdsd::v1::JOB_RUNNING);  // b still runs
  done.set_agent_id("b");
  ASSERT_TRUE(job.client().report_exit(done, seconds(10), decision).ok());
  EXPECT_EQ(decision.state(), pdsd::v1::JOB_SUCCEEDED);
}

TEST(CoordinatorRendezvous, ASilentAgentIsDeclaredLostAndTheJobFails) {
  Job job({.min_nodes = 2, .max_nodes = 2, .max_restarts = 3, .heartbeat_interval_s = 0.1, .heartbeat_timeout_s = 0.5});
  join_all(job, {join_request("a", 1), join_request("b", 1)});
  start_all(job, {"a", "b"}, 0);
  // Only a keeps heartbeating.
  pdsd::v1::HeartbeatResponse orders;
  for (int i = 0; i < 300; ++i) {
    orders = heartbeat(job, "a");
    if (orders.state() == pdsd::v1::JOB_FAILED) break;
    std::this_thread::sleep_for(milliseconds(50));
  }
  ASSERT_EQ(orders.state(), pdsd::v1::JOB_FAILED) << "b was never declared lost";
  EXPECT_EQ(orders.root_cause().rank(), -1);
  EXPECT_EQ(orders.root_cause().hostname(), "host-b");
  EXPECT_NE(orders.root_cause().description().find("node lost: no heartbeat"), std::string::npos)
      << orders.root_cause().description();
}

TEST(CoordinatorRendezvous, CheckpointAndStopOrdersReachEveryAgent) {
  Job job({.min_nodes = 2, .max_nodes = 2});
  join_all(job, {join_request("a", 1), join_request("b", 1)});
  start_all(job, {"a", "b"}, 0);
  pdsd::v1::CheckpointResponse checkpoint;
  ASSERT_TRUE(job.client().checkpoint(seconds(10), checkpoint).ok());
  EXPECT_EQ(checkpoint.checkpoint_seq(), 1);
  EXPECT_EQ(heartbeat(job, "a").checkpoint_seq(), 1);
  EXPECT_EQ(heartbeat(job, "b").checkpoint_seq(), 1);

  pdsd::v1::StopResponse stop;
  ASSERT_TRUE(job.client().stop("maintenance", seconds(10), stop).ok());
  EXPECT_EQ(stop.state(), pdsd::v1::JOB_STOPPING);
  EXPECT_EQ(heartbeat(job, "b").state(), pdsd::v1::JOB_STOPPING);
  pdsd::v1::WorkersExitRequest stopped;
  stopped.set_attempt(0);
  stopped.set_outcome(pdsd::v1::WORKERS_STOPPED);
  pdsd::v1::WorkersExitResponse decision;
  for (const char* agent : {"a", "b"}) {
    stopped.set_agent_id(agent);
    ASSERT_TRUE(job.client().report_exit(stopped, seconds(10), decision).ok());
  }
  EXPECT_EQ(decision.state(), pdsd::v1::JOB_STOPPED);
  EXPECT_NE(decision.reason().find("maintenance"), std::string::npos) << decision.reason();
  // a reported before the job was over: its next heartbeat tells it, and then everyone knows.
  EXPECT_EQ(heartbeat(job, "a").state(), pdsd::v1::JOB_STOPPED);
  EXPECT_TRUE(job.server.coordinator().wait_until_agents_informed(seconds(10)));
}

TEST(CoordinatorRendezvous, WorkerProgressShowsInTheStatus) {
  Job job({.min_nodes = 1, .max_nodes = 1});
  join_all(job, {join_request("a", 2)});
  auto stub = pdsd::v1::Coordinator::NewStub(pdsd::control_channel(job.server.endpoint().str(), kSecurity));
  pdsd::v1::ProgressRequest progress;
  progress.set_protocol_version(pdsd::v1::PROTOCOL_VERSION);
  progress.set_rank(1);
  progress.set_step(42);
  progress.set_loss(1.5);
  progress.set_tokens_per_s(1000);
  pdsd::v1::ProgressResponse ignored;
  grpc::ClientContext ctx;
  pdsd::prepare_call(ctx, kSecurity, seconds(10));
  ASSERT_TRUE(stub->ReportProgress(&ctx, progress, &ignored).ok());
  grpc::ClientContext ctx2;
  pdsd::prepare_call(ctx2, kSecurity, seconds(10));
  progress.set_rank(2);  // not in the job
  EXPECT_EQ(stub->ReportProgress(&ctx2, progress, &ignored).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  pdsd::v1::StatusResponse status;
  ASSERT_TRUE(job.client().status(seconds(10), status).ok());
  ASSERT_EQ(status.ranks_size(), 2);
  EXPECT_EQ(status.ranks(1).step(), 42);
  EXPECT_DOUBLE_EQ(status.ranks(1).loss(), 1.5);
  EXPECT_LT(status.ranks(0).report_age_s(), 0);  // rank 0 never reported
}

}  // namespace
