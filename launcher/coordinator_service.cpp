#include "launcher/coordinator_service.h"

#include <algorithm>

#include "common/error.h"
#include "common/log.h"
#include "launcher/control_security.h"
#include "launcher/endpoint.h"
#include "launcher/kv_store_service.h"

namespace pdsd {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

// How long a blocking handler waits between looks at its own cancellation and the clock.
constexpr auto kWakeEvery = std::chrono::milliseconds(50);

}  // namespace

const char* job_state_name(v1::JobState state) {
  switch (state) {
    case v1::JOB_RENDEZVOUS: return "rendezvous";
    case v1::JOB_RUNNING: return "running";
    case v1::JOB_RESTARTING: return "restarting";
    case v1::JOB_STOPPING: return "stopping";
    case v1::JOB_SUCCEEDED: return "succeeded";
    case v1::JOB_FAILED: return "failed";
    case v1::JOB_STOPPED: return "stopped";
    default: return "unknown";
  }
}

CoordinatorService::CoordinatorService(CoordinatorOptions options) : options_(std::move(options)) {
  watchdog_ = std::thread([this] { watch_heartbeats(); });
}

CoordinatorService::~CoordinatorService() {
  {
    std::lock_guard lock(mutex_);
    stopping_watchdog_ = true;
  }
  changed_.notify_all();
  watchdog_.join();
}

grpc::Status CoordinatorService::admit(const grpc::ServerContext* context, uint32_t version, const char* method) const {
  if (!options_.token.empty()) {
    if (auto s = check_call(context, options_.token, method); !s.ok()) return s;
  }
  return check_protocol_version(version);
}

CoordinatorService::Node* CoordinatorService::find(const std::string& agent_id) {
  for (auto& n : nodes_) {
    if (n.agent_id == agent_id) return &n;
  }
  return nullptr;
}

CoordinatorService::Node* CoordinatorService::heard_from(const std::string& agent_id) {
  Node* node = find(agent_id);
  if (node != nullptr && !node->lost) node->last_seen = Clock::now();
  return node;
}

bool CoordinatorService::terminal() const {
  return state_ == v1::JOB_SUCCEEDED || state_ == v1::JOB_FAILED || state_ == v1::JOB_STOPPED;
}

void CoordinatorService::close_rendezvous() {
  // Explicit node ranks keep their place when they fit; the others fill the gaps in join order.
  const int n = static_cast<int>(nodes_.size());
  std::vector<Node*> by_rank(n, nullptr);
  for (auto& node : nodes_) {
    if (node.requested_rank >= 0 && node.requested_rank < n) by_rank[node.requested_rank] = &node, node.node_rank = node.requested_rank;
  }
  int next = 0;
  for (auto& node : nodes_) {
    if (node.node_rank >= 0) continue;
    while (by_rank[next] != nullptr) ++next;
    if (node.requested_rank >= 0) {
      log::warn("node rank ", node.requested_rank, " of ", node.hostname, " does not fit ", n, " nodes: it becomes ", next);
    }
    by_rank[next] = &node;
    node.node_rank = next;
  }
  int offset = 0;
  for (Node* node : by_rank) node->rank_offset = offset, offset += node->nproc, node->last_seen = Clock::now();
  world_size_ = offset;
  closed_ = true;
  if (options_.max_nodes > 1) log::info("rendezvous '", options_.rdzv_id, "' closed: ", n, " node(s), world size ", world_size_);
  changed_.notify_all();
}

grpc::Status CoordinatorService::Join(grpc::ServerContext* context, const v1::JoinRequest* request, v1::JoinResponse* response) {
  if (auto s = admit(context, request->protocol_version(), "Coordinator/Join"); !s.ok()) return s;
  if (request->rdzv_id() != options_.rdzv_id) {
    return {grpc::StatusCode::FAILED_PRECONDITION,
            str("Join: rendezvous id '", request->rdzv_id(), "' is not this job's ('", options_.rdzv_id,
                "'); every node must use the same --rdzv-id")};
  }
  if (request->agent_id().empty() || request->nproc() < 1) return {grpc::StatusCode::INVALID_ARGUMENT, "Join: need agent_id and nproc >= 1"};
  if (request->node_rank() >= options_.max_nodes) {
    return {grpc::StatusCode::INVALID_ARGUMENT,
            str("Join: node rank ", request->node_rank(), " of ", request->hostname(), " is not below --nnodes ", options_.max_nodes)};
  }
  std::unique_lock lock(mutex_);
  if (find(request->agent_id()) == nullptr) {
    if (closed_ || terminal()) {
      return {grpc::StatusCode::FAILED_PRECONDITION,
              str("Join: the rendezvous of job '", options_.rdzv_id, "' already closed with ", nodes_.size(),
                  " node(s) (state ", job_state_name(state_), "); a node cannot join a running job: restart the job")};
    }
    if (static_cast<int>(nodes_.size()) >= options_.max_nodes) {
      return {grpc::StatusCode::RESOURCE_EXHAUSTED, str("Join: all ", options_.max_nodes, " nodes have joined already")};
    }
    for (const auto& n : nodes_) {
      if (request->node_rank() >= 0 && n.requested_rank == request->node_rank()) {
        return {grpc::StatusCode::ALREADY_EXISTS,
                str("Join: node rank ", request->node_rank(), " is taken by ", n.hostname, " (pid ", n.pid,
                    "); give each node its own --node-rank, or none")};
      }
    }
    Node node;
    node.agent_id = request->agent_id();
    node.hostname = request->hostname();
    node.pid = request->pid();
    node.nproc = request->nproc();
    node.requested_rank = request->node_rank();
    node.last_seen = Clock::now();
    nodes_.push_back(node);
    std::string joined = str("rendezvous: ", node.hostname, " (pid ", node.pid, ", ", node.nproc, " workers) joined, ",
                             nodes_.size(), " of ", options_.min_nodes == options_.max_nodes ? str(options_.max_nodes)
                                                                                             : str(options_.min_nodes, ":", options_.max_nodes));
    if (options_.max_nodes > 1) log::info(joined);  // one node needs no account of its rendezvous
    else log::debug(joined);
    if (static_cast<int>(nodes_.size()) >= options_.min_nodes && !min_reached_at_) min_reached_at_ = Clock::now();
    if (static_cast<int>(nodes_.size()) == options_.max_nodes) close_rendezvous();
    changed_.notify_all();
  }
  const auto give_up = Clock::now() + seconds(options_.join_timeout_s);
  while (!closed_ && !terminal()) {
    if (min_reached_at_ && seconds_since(*min_reached_at_) >= options_.last_call_s) {
      close_rendezvous();
      break;
    }
    if (context->IsCancelled() || Clock::now() >= give_up) {
      std::string joined;
      for (const auto& n : nodes_) joined += str(joined.empty() ? "" : ", ", n.hostname, " (pid ", n.pid, ")");
      const size_t count = nodes_.size();
      std::erase_if(nodes_, [&](const Node& n) { return n.agent_id == request->agent_id(); });
      if (static_cast<int>(nodes_.size()) < options_.min_nodes) min_reached_at_.reset();
      return {grpc::StatusCode::DEADLINE_EXCEEDED,
              str("Join: rendezvous '", options_.rdzv_id, "' did not complete: ", count, " of ", options_.min_nodes,
                  " node(s) joined (", joined, "); start pdsd-launch on every node with the same --rdzv-endpoint, "
                  "--rdzv-id and --nnodes")};
    }
    changed_.wait_for(lock, kWakeEvery);
  }
  if (terminal()) return {grpc::StatusCode::ABORTED, str("Join: the job ended before it started: ", reason_)};
  Node* node = find(request->agent_id());
  if (node == nullptr) return {grpc::StatusCode::ABORTED, "Join: this agent was dropped from the rendezvous"};
  response->set_node_rank(node->node_rank);
  response->set_nnodes(static_cast<int>(nodes_.size()));
  response->set_rank_offset(node->rank_offset);
  response->set_world_size(world_size_);
  response->set_max_restarts(options_.max_restarts);
  response->set_heartbeat_interval_s(options_.heartbeat_interval_s);
  response->set_heartbeat_timeout_s(options_.heartbeat_timeout_s);
  return grpc::Status::OK;
}

bool CoordinatorService::attempt_barrier_complete(int attempt) const {
  return std::all_of(nodes_.begin(), nodes_.end(), [&](const Node& n) { return n.ready_attempt >= attempt; });
}

grpc::Status CoordinatorService::StartAttempt(grpc::ServerContext* context, const v1::StartAttemptRequest* request,
                                              v1::StartAttemptResponse* response) {
  if (auto s = admit(context, request->protocol_version(), "Coordinator/StartAttempt"); !s.ok()) return s;
  std::unique_lock lock(mutex_);
  Node* node = find(request->agent_id());
  if (node == nullptr || !closed_) return {grpc::StatusCode::FAILED_PRECONDITION, "StartAttempt: this agent has not joined"};
  if (request->attempt() > attempt_) {
    return {grpc::StatusCode::INVALID_ARGUMENT, str("StartAttempt: attempt ", request->attempt(), " is ahead of the job's ", attempt_)};
  }
  node->ready_attempt = std::max(node->ready_attempt, request->attempt());
  node->last_seen = Clock::now();
  changed_.notify_all();
  const auto give_up = Clock::now() + std::chrono::milliseconds(request->timeout_ms());
  while (!terminal() && request->attempt() == attempt_ && !attempt_barrier_complete(attempt_)) {
    if (context->IsCancelled() || Clock::now() >= give_up) {
      std::string missing;
      for (const auto& n : nodes_) {
        if (n.ready_attempt < attempt_) missing += str(missing.empty() ? "" : ", ", "node ", n.node_rank, " (", n.hostname, ")");
      }
      return {grpc::StatusCode::DEADLINE_EXCEEDED,
              str("StartAttempt: attempt ", attempt_, " barrier not reached within ", request->timeout_ms(), " ms by ", missing)};
    }
    changed_.wait_for(lock, kWakeEvery);
  }
  response->set_state(state_);
  response->set_attempt(attempt_);
  if (terminal() || request->attempt() != attempt_) {
    response->set_start(false);  // the job ended, or moved on to another attempt meanwhile
    return grpc::Status::OK;
  }
  if (!master_port_of_attempt_.count(attempt_)) {
    // A fresh port per attempt: the previous attempt's c10d store socket may linger in TIME_WAIT.
    if (options_.master_port != 0) {
      master_port_of_attempt_[attempt_] = options_.master_port;
    } else {
      // Bound before the previous attempt's is let go, so the kernel cannot hand that one back.
      reserved_master_port_ = ReservedPort(options_.master_addr);
      master_port_of_attempt_[attempt_] = reserved_master_port_->port();
    }
    state_ = v1::JOB_RUNNING;
    if (options_.max_nodes > 1) log::info("attempt ", attempt_, ": all ", nodes_.size(), " node(s) ready, world size ", world_size_, ", master ",
              options_.master_addr, ":", master_port_of_attempt_[attempt_]);
  }
  response->set_start(true);
  response->set_master_addr(options_.master_addr);
  response->set_master_port(master_port_of_attempt_[attempt_]);
  return grpc::Status::OK;
}

template <class Response>
void CoordinatorService::fill_orders(Response* response) const {
  response->set_state(state_);
  response->set_attempt(attempt_);
  response->set_reason(reason_);
  if (root_cause_) *response->mutable_root_cause() = *root_cause_;
}

grpc::Status CoordinatorService::Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                                           v1::HeartbeatResponse* response) {
  if (auto s = admit(context, request->protocol_version(), "Coordinator/Heartbeat"); !s.ok()) return s;
  std::lock_guard lock(mutex_);
  Node* node = heard_from(request->agent_id());
  if (node == nullptr) return {grpc::StatusCode::FAILED_PRECONDITION, "Heartbeat: this agent has not joined"};
  if (terminal()) node->informed_of_end = true, changed_.notify_all();
  fill_orders(response);
  response->set_checkpoint_seq(checkpoint_seq_);
  if (node->lost && !terminal()) response->set_state(v1::JOB_FAILED);
  return grpc::Status::OK;
}

void CoordinatorService::fail_attempt(v1::FailureReport report) {
  const std::string what = report.rank() >= 0
      ? str("rank ", report.rank(), " on ", report.hostname(), " (node ", report.node_rank(), ") failed: ", report.description())
      : str("node ", report.node_rank(), " (", report.hostname(), "): ", report.description());
  root_cause_ = std::move(report);
  if (restarts_ < options_.max_restarts) {
    ++restarts_;
    ++attempt_;
    state_ = v1::JOB_RESTARTING;
    reason_ = str(what, "; restart ", restarts_, " of ", options_.max_restarts);
  } else {
    state_ = v1::JOB_FAILED;
    reason_ = str(what, "; no restarts left (--max-restarts ", options_.max_restarts, ")");
  }
  log::warn("job ", job_state_name(state_), ": ", reason_);
  changed_.notify_all();
}

void CoordinatorService::end_stop_if_all_exited() {
  if (state_ != v1::JOB_STOPPING) return;
  bool all = std::all_of(nodes_.begin(), nodes_.end(), [&](const Node& n) { return n.lost || n.exited_attempt >= attempt_; });
  if (all) {
    state_ = v1::JOB_STOPPED;
    log::info("job stopped: ", reason_);
    changed_.notify_all();
  }
}

grpc::Status CoordinatorService::ReportWorkersExit(grpc::ServerContext* context, const v1::WorkersExitRequest* request,
                                                   v1::WorkersExitResponse* response) {
  if (auto s = admit(context, request->protocol_version(), "Coordinator/ReportWorkersExit"); !s.ok()) return s;
  std::lock_guard lock(mutex_);
  Node* node = heard_from(request->agent_id());
  if (node == nullptr) return {grpc::StatusCode::FAILED_PRECONDITION, "ReportWorkersExit: this agent has not joined"};
  const bool current = request->attempt() == attempt_;
  if (current) node->exited_attempt = request->attempt(), node->outcome = request->outcome();
  switch (request->outcome()) {
    case v1::WORKERS_SUCCEEDED:
      if (current && state_ == v1::JOB_RUNNING &&
          std::all_of(nodes_.begin(), nodes_.end(), [&](const Node& n) {
            return n.exited_attempt == attempt_ && n.outcome == v1::WORKERS_SUCCEEDED;
          })) {
        state_ = v1::JOB_SUCCEEDED;
        reason_ = str("all ", world_size_, " workers on ", nodes_.size(), " node(s) finished (attempt ", attempt_, ")");
        if (options_.max_nodes > 1) log::info("job succeeded: ", reason_);
        changed_.notify_all();
      }
      break;
    case v1::WORKERS_FAILED:
      // Only the first failure of the running attempt is the root cause; the rest follow from it.
      if (current && state_ == v1::JOB_RUNNING) {
        v1::FailureReport report = request->failure();
        report.set_attempt(request->attempt());
        report.set_node_rank(node->node_rank);
        report.set_hostname(node->hostname);
        fail_attempt(std::move(report));
      }
      break;
    case v1::AGENT_INTERRUPTED:
      if (!terminal() && state_ != v1::JOB_STOPPING) {
        v1::FailureReport report;
        report.set_attempt(attempt_);
        report.set_rank(-1);
        report.set_node_rank(node->node_rank);
        report.set_hostname(node->hostname);
        report.set_pid(node->pid);
        report.set_signal(request->signal());
        report.set_description(str("its agent received signal ", request->signal(), " and stopped its workers"));
        root_cause_ = report;
        state_ = v1::JOB_STOPPING;
        reason_ = str("the agent on ", node->hostname, " (node ", node->node_rank, ") was interrupted by signal ", request->signal());
        log::warn("job stopping: ", reason_);
        changed_.notify_all();
      }
      break;
    default:
      break;
  }
  end_stop_if_all_exited();
  if (terminal()) node->informed_of_end = true, changed_.notify_all();
  fill_orders(response);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::ReportProgress(grpc::ServerContext* context, const v1::ProgressRequest* request,
                                                v1::ProgressResponse*) {
  if (auto s = admit(context, request->protocol_version(), "Coordinator/ReportProgress"); !s.ok()) return s;
  std::lock_guard lock(mutex_);
  if (!closed_ || request->rank() < 0 || request->rank() >= world_size_) {
    return {grpc::StatusCode::INVALID_ARGUMENT, str("ReportProgress: rank ", request->rank(), " is not in this job (world size ", world_size_, ")")};
  }
  progress_[request->rank()] = {.attempt = request->attempt(), .step = request->step(), .loss = request->loss(),
                                .tokens_per_s = request->tokens_per_s(), .at = Clock::now()};
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::GetStatus(grpc::ServerContext* context, const v1::StatusRequest* request,
                                           v1::StatusResponse* response) {
  if (auto s = admit(context, request->protocol_version(), "Coordinator/GetStatus"); !s.ok()) return s;
  std::lock_guard lock(mutex_);
  response->set_rdzv_id(options_.rdzv_id);
  response->set_state(state_);
  response->set_attempt(attempt_);
  response->set_restart_count(restarts_);
  response->set_max_restarts(options_.max_restarts);
  response->set_world_size(world_size_);
  response->set_reason(reason_);
  response->set_uptime_s(seconds_since(started_));
  if (root_cause_) *response->mutable_root_cause() = *root_cause_;
  std::vector<const Node*> sorted;
  for (const auto& n : nodes_) sorted.push_back(&n);
  std::sort(sorted.begin(), sorted.end(), [](const Node* a, const Node* b) { return a->node_rank < b->node_rank; });
  for (const Node* n : sorted) {
    auto* out = response->add_nodes();
    out->set_node_rank(n->node_rank);
    out->set_hostname(n->hostname);
    out->set_nproc(n->nproc);
    out->set_rank_offset(n->rank_offset);
    out->set_heartbeat_age_s(seconds_since(n->last_seen));
    out->set_lost(n->lost);
    const char* workers = n->exited_attempt < attempt_ ? (n->ready_attempt >= attempt_ && state_ == v1::JOB_RUNNING ? "running" : "waiting")
                          : n->outcome == v1::WORKERS_SUCCEEDED ? "succeeded"
                          : n->outcome == v1::WORKERS_FAILED    ? "failed"
                                                                : "stopped";
    out->set_workers(n->lost ? "lost" : workers);
    if (!closed_) continue;
    for (int local = 0; local < n->nproc; ++local) {
      auto* rank = response->add_ranks();
      rank->set_rank(n->rank_offset + local);
      rank->set_node_rank(n->node_rank);
      rank->set_report_age_s(-1);
      if (auto p = progress_.find(rank->rank()); p != progress_.end()) {
        rank->set_step(p->second.step);
        rank->set_loss(p->second.loss);
        rank->set_tokens_per_s(p->second.tokens_per_s);
        rank->set_attempt(p->second.attempt);
        rank->set_report_age_s(seconds_since(p->second.at));
      }
    }
  }
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::RequestCheckpoint(grpc::ServerContext* context, const v1::CheckpointRequest* request,
                                                   v1::CheckpointResponse* response) {
  if (auto s = admit(context, request->protocol_version(), "Coordinator/RequestCheckpoint"); !s.ok()) return s;
  std::lock_guard lock(mutex_);
  if (state_ != v1::JOB_RUNNING) {
    return {grpc::StatusCode::FAILED_PRECONDITION, str("checkpoint: the job is ", job_state_name(state_), ", not running")};
  }
  response->set_checkpoint_seq(++checkpoint_seq_);
  log::info("checkpoint requested by ", context->peer(), ": SIGUSR1 to every worker");
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::RequestStop(grpc::ServerContext* context, const v1::StopRequest* request, v1::StopResponse* response) {
  if (auto s = admit(context, request->protocol_version(), "Coordinator/RequestStop"); !s.ok()) return s;
  std::lock_guard lock(mutex_);
  if (!terminal() && state_ != v1::JOB_STOPPING) {
    reason_ = str("stop requested by ", context->peer(), request->reason().empty() ? "" : ": " + request->reason());
    root_cause_.reset();  // an operator's stop has no failing rank (agents exit 0)
    state_ = closed_ ? v1::JOB_STOPPING : v1::JOB_STOPPED;
    log::warn("job stopping: ", reason_);
    end_stop_if_all_exited();
    changed_.notify_all();
  }
  response->set_state(state_);
  return grpc::Status::OK;
}

void CoordinatorService::watch_heartbeats() {
  std::unique_lock lock(mutex_);
  while (!stopping_watchdog_) {
    changed_.wait_for(lock, seconds(options_.heartbeat_interval_s / 2));
    if (!closed_) continue;
    for (auto& n : nodes_) {
      if (n.lost || n.informed_of_end) continue;
      const double silent = seconds_since(n.last_seen);
      if (silent < options_.heartbeat_timeout_s) continue;
      n.lost = true;
      log::error("node ", n.node_rank, " (", n.hostname, ", agent pid ", n.pid, ") lost: no heartbeat for ", silent, " s");
      if (terminal()) continue;
      v1::FailureReport report;
      report.set_attempt(attempt_);
      report.set_rank(-1);
      report.set_node_rank(n.node_rank);
      report.set_hostname(n.hostname);
      report.set_pid(n.pid);
      report.set_exit_code(1);
      report.set_description(str("node lost: no heartbeat from its agent (pid ", n.pid, ") for ", static_cast<int>(silent * 10) / 10.0,
                                 " s (agent killed, host down or network cut)"));
      root_cause_ = report;
      state_ = v1::JOB_FAILED;  // its ranks cannot be replaced: the job ends; a restart resumes from the checkpoint
      reason_ = str("node ", n.node_rank, " (", n.hostname, ") ", report.description());
      changed_.notify_all();
    }
    end_stop_if_all_exited();
  }
}

bool CoordinatorService::wait_until_agents_informed(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] {
    return terminal() && std::all_of(nodes_.begin(), nodes_.end(), [](const Node& n) { return n.lost || n.informed_of_end; });
  });
}

}  // namespace pdsd
