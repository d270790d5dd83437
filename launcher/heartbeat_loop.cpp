#include "launcher/heartbeat_loop.h"

#include "common/error.h"
#include "common/log.h"

namespace pdsd {

void JobOrders::absorb(v1::JobState s, int a, const std::string& r, const v1::FailureReport* cause) {
  // Replies may arrive out of order (heartbeat thread vs. the agent's own reports): never go back.
  if (a < attempt || (a == attempt && terminal())) return;
  state = s;
  attempt = a;
  reason = r;
  if (cause != nullptr) root_cause = *cause;
}

HeartbeatLoop::HeartbeatLoop(CoordinatorClient& client, std::string agent_id, double interval_s, double timeout_s)
    : client_(client), agent_id_(std::move(agent_id)), interval_(interval_s), timeout_(timeout_s) {
  thread_ = std::thread([this] { run(); });
}

HeartbeatLoop::~HeartbeatLoop() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void HeartbeatLoop::set_attempt(int attempt) {
  std::lock_guard lock(mutex_);
  attempt_ = attempt;
}

JobOrders HeartbeatLoop::orders() const {
  std::lock_guard lock(mutex_);
  return orders_;
}

void HeartbeatLoop::absorb(const v1::WorkersExitResponse& r) {
  std::lock_guard lock(mutex_);
  orders_.absorb(r.state(), r.attempt(), r.reason(), r.has_root_cause() ? &r.root_cause() : nullptr);
}

void HeartbeatLoop::mark_lost(const std::string& detail) {
  std::lock_guard lock(mutex_);
  orders_.coordinator_lost = true;
  orders_.lost_detail = detail;
}

void HeartbeatLoop::run() {
  using Clock = std::chrono::steady_clock;
  auto last_ok = Clock::now();
  // One call may take at most the interval twice (but a second at least): a slow coordinator is
  // still a live one, and the timeout below is what decides.
  const auto deadline = std::chrono::duration_cast<std::chrono::milliseconds>(std::max(2 * interval_, std::chrono::duration<double>(1.0)));
  std::unique_lock lock(mutex_);
  while (!stop_) {
    const int attempt = attempt_;
    lock.unlock();
    v1::HeartbeatResponse reply;
    grpc::Status s = client_.heartbeat(agent_id_, attempt, deadline, reply);
    lock.lock();
    if (s.ok()) {
      last_ok = Clock::now();
      orders_.absorb(reply.state(), reply.attempt(), reply.reason(), reply.has_root_cause() ? &reply.root_cause() : nullptr);
      orders_.checkpoint_seq = std::max(orders_.checkpoint_seq, reply.checkpoint_seq());
    } else if (Clock::now() - last_ok > timeout_ && !orders_.coordinator_lost) {
      orders_.coordinator_lost = true;
      orders_.lost_detail = str("no answer from the coordinator at ", client_.endpoint(), " for ",
                                std::chrono::duration<double>(Clock::now() - last_ok).count(), " s (last error: ", describe(s), ")");
      log::error(orders_.lost_detail);
    }
    wake_.wait_for(lock, interval_);
  }
}

}  // namespace pdsd
