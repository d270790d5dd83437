#include "launcher/node_agent.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <thread>

#include "common/error.h"
#include "common/host_threads.h"
#include "common/log.h"
#include "common/worker_env.h"
#include "launcher/coordinator_client.h"
#include "launcher/coordinator_service.h"
#include "launcher/endpoint.h"
#include "launcher/heartbeat_loop.h"
#include "launcher/worker_group.h"

namespace pdsd {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

milliseconds ms(double seconds) { return milliseconds(static_cast<int64_t>(seconds * 1000)); }

// How long a worker's error exit waits for another node's report before it is reported itself
// (see run_attempt): long enough for a peer's agent to notice a worker killed there.
constexpr auto kEchoGrace = std::chrono::seconds(1);

// The root cause as every agent prints it (the format tests and users grep for).
void print_root_cause(const v1::FailureReport& r) {
  std::cerr << "\n==== pdsd-launch: worker failure (attempt " << r.attempt() << ") ====\n";
  if (r.rank() >= 0) {
    std::cerr << "  root cause : rank " << r.rank() << " (local rank " << r.local_rank() << ", pid " << r.pid()
              << ", node " << r.node_rank() << ")\n"
              << "  host       : " << r.hostname() << "\n"
              << "  status     : " << r.description() << " after " << r.seconds() << " s\n";
  } else {
    std::cerr << "  root cause : node " << r.node_rank() << " (agent pid " << r.pid() << ")\n"
              << "  host       : " << r.hostname() << "\n"
              << "  status     : " << r.description() << "\n";
  }
  if (!r.log_file().empty()) std::cerr << "  log        : " << r.log_file() << "\n";
  if (r.last_lines_size() > 0) {
    std::cerr << "  last lines :\n";
    for (const auto& line : r.last_lines()) std::cerr << "    " << line << "\n";
  }
  std::cerr << "==========================================================\n" << std::flush;
}

int exit_code_of(const v1::FailureReport& r) {
  if (r.signal() != 0) return 128 + r.signal();
  return r.exit_code() != 0 ? r.exit_code() : 1;
}

v1::FailureReport to_report(const WorkerExit& w, double seconds) {
  v1::FailureReport r;
  r.set_rank(w.rank);
  r.set_local_rank(w.local_rank);
  r.set_pid(w.pid);
  r.set_exit_code(w.exit_code);
  r.set_signal(w.signal);
  r.set_description(w.describe());
  r.set_seconds(seconds);
  r.set_log_file(w.log_file);
  for (const auto& line : w.last_lines) r.add_last_lines(line);
  return r;
}

class NodeAgent {
 public:
  explicit NodeAgent(const NodeAgentSetup& setup)
      : setup_(setup), opt_(setup.options), client_(setup.coordinator_endpoint, setup.security),
        agent_id_(str(host_name(), ":", ::getpid(), ":", generate_job_token().substr(0, 8))) {}

  int run() {
    join();  // before this, SIGINT / SIGTERM end the agent as usual: it has no workers yet
    WorkerGroup::catch_stop_signals();
    heartbeats_ = std::make_unique<HeartbeatLoop>(client_, agent_id_, joined_.heartbeat_interval_s(), joined_.heartbeat_timeout_s());
    int code = attempts();
    heartbeats_.reset();
    if (setup_.hosted != nullptr) {
      // Stay until every other agent has heard how the job ended: leaving earlier would look to them
      // like a lost coordinator.
      setup_.hosted->wait_until_agents_informed(ms(2 * joined_.heartbeat_timeout_s()));
    }
    return code;
  }

 private:
  void join() {
    v1::JoinRequest request;
    request.set_rdzv_id(opt_.rdzv_id);
    request.set_agent_id(agent_id_);
    request.set_hostname(host_name());
    request.set_nproc(opt_.nproc_per_node);
    request.set_node_rank(opt_.node_rank);
    request.set_pid(::getpid());
    if (opt_.max_nodes > 1) {
      log::info("joining rendezvous '", opt_.rdzv_id, "' at ", client_.endpoint(), " (", opt_.min_nodes == opt_.max_nodes ? str(opt_.max_nodes) : str(opt_.min_nodes, ":", opt_.max_nodes),
                " nodes, node rank ", opt_.node_rank < 0 ? std::string("auto") : str(opt_.node_rank), ", token ",
                token_fingerprint(setup_.security.token), setup_.security.tls() ? ", mutual TLS" : "", ")");
    }
    grpc::Status s = client_.join(request, ms(opt_.join_timeout_s), joined_);
    if (!s.ok()) throw Error(str("rendezvous at ", client_.endpoint(), " failed: ", describe(s)));
    log::init({.prefix = str("agent ", joined_.node_rank()), .level = log::level_from_env().value_or(log::Level::info)});
    if (opt_.max_nodes > 1) {
      log::info("joined as node ", joined_.node_rank(), " of ", joined_.nnodes(), ": ranks ", joined_.rank_offset(), "..",
                joined_.rank_offset() + opt_.nproc_per_node - 1, " of world size ", joined_.world_size());
    }
  }

  // Runs attempts until the job ends; returns this agent's exit code.
  int attempts() {
    int attempt = 0;
    for (;;) {
      if (int sig = WorkerGroup::take_pending_signal(); sig != 0 && sig != SIGUSR1) return interrupted(attempt, sig);
      v1::StartAttemptResponse start;
      if (std::optional<int> code = barrier(attempt, start)) return *code;
      if (!start.start()) {
        if (start.attempt() > attempt && start.state() != v1::JOB_FAILED && start.state() != v1::JOB_STOPPED) {
          attempt = start.attempt();
          continue;
        }
        return decide_end(attempt);
      }
      heartbeats_->set_attempt(attempt);
      std::optional<int> next = run_attempt(attempt, start);
      if (!next) return end_code_;
      attempt = *next;
    }
  }

  // Waits at the attempt's barrier in short calls, so that a signal or a lost coordinator is noticed;
  // returns an exit code when the agent must end instead.
  std::optional<int> barrier(int attempt, v1::StartAttemptResponse& start) {
    const auto give_up = Clock::now() + ms(opt_.join_timeout_s);
    for (;;) {
      grpc::Status s = client_.start_attempt(agent_id_, attempt, milliseconds(1000), start);
      if (s.ok()) return std::nullopt;
      if (s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED && s.error_code() != grpc::StatusCode::UNAVAILABLE) {
        throw Error(str("attempt ", attempt, ": the barrier at ", client_.endpoint(), " failed: ", describe(s)));
      }
      if (int sig = WorkerGroup::take_pending_signal(); sig != 0 && sig != SIGUSR1) return interrupted(attempt, sig);
      if (JobOrders o = heartbeats_->orders(); o.coordinator_lost) {
        log::error("stopping: ", o.lost_detail);
        return 1;
      }
      if (Clock::now() >= give_up) {
        throw Error(str("attempt ", attempt, ": not every node reached the barrier within ", opt_.join_timeout_s, " s: ", describe(s)));
      }
    }
  }

  // The workers of one attempt; returns the next attempt, or nothing when the job is over (end_code_).
  std::optional<int> run_attempt(int attempt, const v1::StartAttemptResponse& start) {
    WorkerSpec spec = worker_spec(attempt, start);
    int64_t checkpoints_seen = heartbeats_->orders().checkpoint_seq;  // a request before this attempt is not replayed
    spec.order = [&]() -> int {
      JobOrders o = heartbeats_->orders();
      // A worker failed somewhere (restart or failed job): no collective save can complete without
      // it, so the workers are not asked to save (SIGTERM would make them try, and wait for the dead
      // peer until --stop-grace); they resume from the newest checkpoint instead.
      if (o.attempt > attempt || o.state == v1::JOB_FAILED) return SIGKILL;
      if (o.coordinator_lost || o.state == v1::JOB_STOPPING || o.terminal()) return SIGTERM;
      if (o.checkpoint_seq > checkpoints_seen) {
        checkpoints_seen = o.checkpoint_seq;
        return SIGUSR1;
      }
      return 0;
    };
    auto t0 = Clock::now();
    spec.on_first_failure = [&](const WorkerExit& w) {
      const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
      // A worker that exited with an error is most often the echo of a worker killed elsewhere (its
      // collective lost that peer), whose agent may report a moment later: the first report is the
      // root cause every agent prints. So an error exit waits up to kEchoGrace for another node's
      // report to end the attempt first; a worker killed by a signal is reported at once.
      if (w.signal == 0 && joined_.nnodes() > 1) {
        const auto until = Clock::now() + kEchoGrace;
        while (Clock::now() < until && heartbeats_->orders().attempt <= attempt) std::this_thread::sleep_for(ms(0.02));
      }
      report(attempt, v1::WORKERS_FAILED, to_report(w, seconds));
    };
    log::info("attempt ", attempt, ": starting ", opt_.nproc_per_node, " workers (ranks ", joined_.rank_offset(), "..",
              joined_.rank_offset() + opt_.nproc_per_node - 1, " of ", joined_.world_size(), ", master ",
              start.master_addr(), ":", start.master_port(), ")");
    GroupResult result = WorkerGroup(spec).wait();
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    if (result.stop_signal != 0) {
      end_code_ = interrupted(attempt, result.stop_signal);
      return std::nullopt;
    }
    if (result.ok()) {
      log::info("all ", result.workers.size(), " workers finished successfully in ", seconds, " s");
      report(attempt, v1::WORKERS_SUCCEEDED, {});
    } else if (!result.first_failure) {
      report(attempt, v1::WORKERS_STOPPED, {});
    }
    return await_decision(attempt);
  }

  WorkerSpec worker_spec(int attempt, const v1::StartAttemptResponse& start) const {
    WorkerSpec spec;
    spec.command = setup_.command;
    spec.monitor_interval_s = opt_.monitor_interval_s;
    spec.stop_grace_s = opt_.stop_grace_s;
    spec.console = opt_.redirects == 0;
    spec.console_local_ranks = opt_.local_ranks_filter;
    if (!opt_.log_dir.empty()) spec.log_dir = (std::filesystem::path(opt_.log_dir) / str("attempt_", attempt)).string();
    for (int local = 0; local < opt_.nproc_per_node; ++local) {
      WorkerEnv env;
      env.local_rank = local;
      env.local_world_size = opt_.nproc_per_node;
      env.group_rank = joined_.node_rank();
      env.rank = joined_.rank_offset() + local;
      env.world_size = joined_.world_size();
      env.master_addr = start.master_addr();
      env.master_port = start.master_port();
      env.restart_count = attempt;
      auto vars = env.to_variables();
      vars["TORCHELASTIC_MAX_RESTARTS"] = std::to_string(opt_.max_restarts);
      vars["TORCHELASTIC_RUN_ID"] = opt_.rdzv_id;
      vars["GROUP_WORLD_SIZE"] = std::to_string(joined_.nnodes());
      vars["PDSD_AGENT_PID"] = std::to_string(::getpid());
      // The control plane, for the workers' progress reports (worker/control/progress_reporter.h).
      vars["PDSD_CONTROL_ENDPOINT"] = setup_.coordinator_endpoint;
      vars["PDSD_JOB_TOKEN"] = setup_.security.token;
      if (setup_.security.tls()) {
        vars["PDSD_TLS_CERT"] = setup_.security.tls_cert;
        vars["PDSD_TLS_KEY"] = setup_.security.tls_key;
        vars["PDSD_TLS_CA"] = setup_.security.tls_ca;
      }
      // Without a limit every worker starts one compute thread per core and the node is
      // oversubscribed nproc times over: each gets its share. A value the user set is kept. A worker
      // that drives a GPU lowers the default to one thread (common/host_threads.h says why); the
      // marker tells it the value is the default.
      if (std::getenv("OMP_NUM_THREADS") == nullptr) {
        vars["OMP_NUM_THREADS"] = std::to_string(std::max(1u, std::thread::hardware_concurrency() / opt_.nproc_per_node));
        vars[kOmpThreadsDefaultedVariable] = "1";
      }
      spec.env_per_worker.push_back(vars);
      spec.global_ranks.push_back(env.rank);
    }
    return spec;
  }

  void report(int attempt, v1::WorkersOutcome outcome, v1::FailureReport failure, int signal = 0) {
    v1::WorkersExitRequest request;
    request.set_agent_id(agent_id_);
    request.set_attempt(attempt);
    request.set_outcome(outcome);
    *request.mutable_failure() = std::move(failure);
    request.set_signal(signal);
    v1::WorkersExitResponse reply;
    grpc::Status s = client_.report_exit(request, ms(std::max(2.0, joined_.heartbeat_timeout_s())), reply);
    if (s.ok()) heartbeats_->absorb(reply);
    else heartbeats_->mark_lost(str("cannot report to the coordinator at ", client_.endpoint(), ": ", describe(s)));
  }

  int interrupted(int attempt, int sig) {
    log::warn("stopped by signal ", sig);
    report(attempt, v1::AGENT_INTERRUPTED, {}, sig);
    return 128 + sig;
  }

  // After this node's workers ended: wait until the job says restart (returns the attempt) or end.
  std::optional<int> await_decision(int attempt) {
    for (;;) {
      JobOrders o = heartbeats_->orders();
      if (o.coordinator_lost) {
        log::error("stopping: ", o.lost_detail);
        end_code_ = 1;
        return std::nullopt;
      }
      if (o.attempt > attempt) {
        if (o.root_cause) print_root_cause(*o.root_cause);
        log::warn("restarting the worker group (restart ", o.attempt, " of ", opt_.max_restarts, "): ", o.reason);
        return o.attempt;
      }
      if (o.terminal()) {
        end_code_ = decide_end(attempt);
        return std::nullopt;
      }
      if (int sig = WorkerGroup::take_pending_signal(); sig != 0 && sig != SIGUSR1) {
        end_code_ = interrupted(attempt, sig);
        return std::nullopt;
      }
      std::this_thread::sleep_for(ms(std::min(0.1, joined_.heartbeat_interval_s())));
    }
  }

  int decide_end(int attempt) {
    JobOrders o = heartbeats_->orders();
    if (!o.terminal()) {  // StartAttempt said the job ended: take the freshest word on how
      v1::HeartbeatResponse reply;
      if (client_.heartbeat(agent_id_, attempt, ms(2000), reply).ok()) {
        o.absorb(reply.state(), reply.attempt(), reply.reason(), reply.has_root_cause() ? &reply.root_cause() : nullptr);
      }
    }
    switch (o.state) {
      case v1::JOB_SUCCEEDED:
        if (opt_.max_nodes > 1 && setup_.hosted == nullptr) log::info("job succeeded: ", o.reason);
        return 0;
      case v1::JOB_STOPPED:
        if (o.root_cause) print_root_cause(*o.root_cause);
        log::warn("job stopped: ", o.reason);
        return o.root_cause ? exit_code_of(*o.root_cause) : 0;
      default:
        if (o.root_cause) print_root_cause(*o.root_cause);
        log::error("giving up after ", o.attempt + 1, " attempt(s) (--max-restarts ", opt_.max_restarts, "): ", o.reason);
        return o.root_cause ? exit_code_of(*o.root_cause) : 1;
    }
  }

  const NodeAgentSetup& setup_;
  const LaunchOptions& opt_;
  CoordinatorClient client_;
  std::string agent_id_;
  v1::JoinResponse joined_;
  std::unique_ptr<HeartbeatLoop> heartbeats_;
  int end_code_ = 1;
};

}  // namespace

int run_node_agent(const NodeAgentSetup& setup) { return NodeAgent(setup).run(); }

}  // namespace pdsd
