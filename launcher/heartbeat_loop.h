// An agent's heartbeat to the coordinator, on its own thread, and the job's latest orders from the
// replies (state, attempt, checkpoint requests, root cause). The agent's worker loop reads orders()
// every monitor interval without waiting on the network. When no heartbeat has succeeded for the
// heartbeat timeout, the coordinator counts as lost (its agent died, or the network did): orders()
// says so and the agent stops its workers.
//
//   HeartbeatLoop heartbeats(client, agent_id, 0.5, 5.0);
//   heartbeats.set_attempt(k);
//   JobOrders now = heartbeats.orders();
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "launcher/coordinator_client.h"

namespace pdsd {

struct JobOrders {
  v1::JobState state = v1::JOB_RUNNING;
  int attempt = 0;
  int64_t checkpoint_seq = 0;
  std::string reason;
  std::optional<v1::FailureReport> root_cause;
  bool coordinator_lost = false;
  std::string lost_detail;  // why: the last error and for how long
  bool terminal() const { return state == v1::JOB_SUCCEEDED || state == v1::JOB_FAILED || state == v1::JOB_STOPPED; }
  void absorb(v1::JobState state, int attempt, const std::string& reason, const v1::FailureReport* root_cause);
};

class HeartbeatLoop {
 public:
  HeartbeatLoop(CoordinatorClient& client, std::string agent_id, double interval_s, double timeout_s);
  ~HeartbeatLoop();  // stops the thread (within one RPC deadline)

  void set_attempt(int attempt);
  JobOrders orders() const;
  // Folds in what a ReportWorkersExit reply said (it may be newer than the last heartbeat).
  void absorb(const v1::WorkersExitResponse& response);
  void mark_lost(const std::string& detail);

 private:
  void run();
  CoordinatorClient& client_;
  std::string agent_id_;
  std::chrono::duration<double> interval_, timeout_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  int attempt_ = 0;
  JobOrders orders_;
  std::thread thread_;
};

}  // namespace pdsd
