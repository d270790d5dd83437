// The worker processes of one node for one attempt: spawned together, watched together, stopped
// together. Each worker runs in its own process group (so a signal reaches its children too) and is
// killed by the kernel if this agent dies (PR_SET_PDEATHSIG), so no worker outlives its agent.
// Output is read line by line through a pipe, prefixed with the rank, shown on the console and
// appended to the rank's log file; the last lines are kept for the failure report.
//
//   WorkerGroup group(spec);          // spawns
//   GroupResult r = group.wait();     // until all exit, or the first failure (then stops the rest)
#pragma once

#include <sys/types.h>

#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace pdsd {

struct WorkerExit;

struct WorkerSpec {
  std::vector<std::string> command;                // argv
  std::vector<std::map<std::string, std::string>> env_per_worker;  // extra variables, one map per local rank
  std::vector<int> global_ranks;                   // for prefixes and reports
  std::string log_dir;                             // "" : no files
  bool console = true;                             // false: files only (--redirects)
  std::vector<int> console_local_ranks;            // empty: all
  double monitor_interval_s = 0.1;
  double stop_grace_s = 30.0;
  // Polled every monitor interval: a signal the job orders for every worker now, 0 for none. SIGUSR1
  // is delivered and the group goes on (checkpoint now); SIGTERM stops the group (grace, then SIGKILL).
  std::function<int()> order;
  // Called once with the first failing worker, before the others are stopped, so the job hears of it
  // while this node is still stopping.
  std::function<void(const WorkerExit&)> on_first_failure;
};

struct WorkerExit {
  int local_rank = 0;
  int rank = 0;
  pid_t pid = 0;
  int exit_code = -1;  // valid when signal == 0
  int signal = 0;
  double seconds = 0;
  std::string log_file;
  std::deque<std::string> last_lines;
  bool ok() const { return signal == 0 && exit_code == 0; }
  std::string describe() const;  // "exit code 2" / "signal SIGKILL (9)"
};

struct GroupResult {
  std::vector<WorkerExit> workers;
  std::optional<size_t> first_failure;  // index into workers of the root cause
  int stop_signal = 0;                  // a signal this agent received and forwarded, if any
  bool stopped_by_order = false;        // spec.order said stop
  bool ok() const { return !first_failure && stop_signal == 0 && !stopped_by_order; }
};

class WorkerGroup {
 public:
  explicit WorkerGroup(WorkerSpec spec);
  ~WorkerGroup();  // kills whatever still runs
  WorkerGroup(const WorkerGroup&) = delete;
  WorkerGroup& operator=(const WorkerGroup&) = delete;

  // Forwards SIGINT / SIGTERM / SIGUSR1 received by this process to the workers.
  GroupResult wait();

  // The agent catches SIGINT / SIGTERM / SIGUSR1 for its whole life (wait() forwards them; between
  // attempts the agent asks with take_pending_signal()).
  static void catch_stop_signals();
  static int take_pending_signal();

 private:
  struct Worker;
  void spawn(size_t index);
  void pump(Worker& w);
  void stop_all(int signal);
  WorkerSpec spec_;
  std::vector<Worker*> workers_;
};

}  // namespace pdsd
