// The job's coordinator (proto/pdsd/control.proto, service Coordinator), hosted by the agent on the
// rendezvous host. It owns the job-wide truth every agent acts on:
//   - the rendezvous: agents Join (host, nproc, node rank or -1); it closes when MAX nodes joined, or
//     MIN joined and the last-call time passed; node ranks are assigned, global ranks follow them;
//   - one attempt after another, each opened by a barrier (StartAttempt) so that all nodes start
//     their workers together, with the same attempt number and the workers' MASTER_ADDR/PORT;
//   - failures: the first failing worker of an attempt is the root cause; within max_restarts the job
//     moves to the next attempt (every agent stops its workers and meets at the next barrier), else
//     it fails. An agent that stops heartbeating is declared lost and the job fails (a node's ranks
//     cannot be replaced without it);
//   - operators: status, checkpoint now (SIGUSR1 to every worker), graceful stop.
// Agents learn their orders from the replies to Heartbeat and ReportWorkersExit; nothing is pushed.
//
//   CoordinatorService coordinator(options);   // register on a grpc::Server (control_server.h)
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "launcher/endpoint.h"
#include "pdsd/control.grpc.pb.h"

namespace pdsd {

struct CoordinatorOptions {
  std::string rdzv_id = "none";
  int min_nodes = 1;
  int max_nodes = 1;
  int max_restarts = 0;
  double join_timeout_s = 900;      // torchrun's join_timeout: how long a Join may wait for the others
  double last_call_s = 30;          // torchrun's last_call_timeout: with MIN:MAX, wait this long after MIN joined
  double heartbeat_interval_s = 0.5;
  double heartbeat_timeout_s = 5;   // an agent silent this long is declared lost
  std::string master_addr = "127.0.0.1";  // the workers' MASTER_ADDR (global rank 0 hosts the c10d store)
  int master_port = 0;              // 0: a free port on this host, fresh for each attempt
  std::string token;                // every call must carry it; empty: no check (tests of the protocol only)
};

class CoordinatorService final : public v1::Coordinator::Service {
 public:
  explicit CoordinatorService(CoordinatorOptions options);
  ~CoordinatorService() override;  // stops the heartbeat watchdog

  grpc::Status Join(grpc::ServerContext*, const v1::JoinRequest*, v1::JoinResponse*) override;
  grpc::Status StartAttempt(grpc::ServerContext*, const v1::StartAttemptRequest*, v1::StartAttemptResponse*) override;
  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest*, v1::HeartbeatResponse*) override;
  grpc::Status ReportWorkersExit(grpc::ServerContext*, const v1::WorkersExitRequest*, v1::WorkersExitResponse*) override;
  grpc::Status ReportProgress(grpc::ServerContext*, const v1::ProgressRequest*, v1::ProgressResponse*) override;
  grpc::Status GetStatus(grpc::ServerContext*, const v1::StatusRequest*, v1::StatusResponse*) override;
  grpc::Status RequestCheckpoint(grpc::ServerContext*, const v1::CheckpointRequest*, v1::CheckpointResponse*) override;
  grpc::Status RequestStop(grpc::ServerContext*, const v1::StopRequest*, v1::StopResponse*) override;

  // The hosting agent calls this before it shuts the server down: true once every agent still alive
  // has heard that the job is over (so none of them mistakes the coordinator's exit for a crash).
  bool wait_until_agents_informed(std::chrono::milliseconds timeout);

 private:
  using Clock = std::chrono::steady_clock;
  struct Node {
    std::string agent_id, hostname;
    int64_t pid = 0;
    int nproc = 1;
    int requested_rank = -1;
    int node_rank = -1;
    int rank_offset = 0;
    Clock::time_point last_seen;
    bool lost = false;
    int ready_attempt = -1;  // the StartAttempt barrier this node reached
    int exited_attempt = -1;
    v1::WorkersOutcome outcome = v1::WORKERS_OUTCOME_UNSPECIFIED;
    bool informed_of_end = false;
  };
  struct Progress {
    int attempt = 0;
    int64_t step = 0;
    double loss = 0, tokens_per_s = 0;
    Clock::time_point at;
  };

  grpc::Status admit(const grpc::ServerContext* context, uint32_t version, const char* method) const;
  Node* find(const std::string& agent_id);
  // A joined agent's node, with its heartbeat clock refreshed unless it was declared lost; null
  // when the agent never joined.
  Node* heard_from(const std::string& agent_id);
  void close_rendezvous();
  void fail_attempt(v1::FailureReport report);
  void end_stop_if_all_exited();
  bool terminal() const;
  bool attempt_barrier_complete(int attempt) const;
  template <class Response> void fill_orders(Response* response) const;
  void watch_heartbeats();

  CoordinatorOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Node> nodes_;  // in join order
  bool closed_ = false;
  std::optional<Clock::time_point> min_reached_at_;
  int world_size_ = 0;
  v1::JobState state_ = v1::JOB_RENDEZVOUS;
  int attempt_ = 0;
  int restarts_ = 0;
  std::string reason_;
  std::optional<v1::FailureReport> root_cause_;
  int64_t checkpoint_seq_ = 0;
  std::map<int, int> master_port_of_attempt_;
  // The current attempt's MASTER_PORT, held (endpoint.h) until the next attempt or the job's end, so
  // nothing else on this host takes it before rank 0's store binds it.
  std::optional<ReservedPort> reserved_master_port_;
  std::map<int, Progress> progress_;  // by global rank
  Clock::time_point started_ = Clock::now();
  bool stopping_watchdog_ = false;
  std::thread watchdog_;
};

const char* job_state_name(v1::JobState state);

}  // namespace pdsd
