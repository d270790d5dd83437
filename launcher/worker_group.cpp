#include "launcher/worker_group.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "common/error.h"
#include "common/log.h"

namespace pdsd {

namespace {

constexpr size_t kTailLines = 20;
using Clock = std::chrono::steady_clock;

std::atomic<int> g_pending_signal{0};
void on_signal(int sig) { g_pending_signal.store(sig); }

std::string signal_name(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev ? str("SIG", abbrev) : str("signal ", sig);
}

}  // namespace

std::string WorkerExit::describe() const {
  if (signal != 0) return str("killed by ", signal_name(signal), " (", signal, ")");
  return str("exit code ", exit_code);
}

struct WorkerGroup::Worker {
  WorkerExit exit;
  int out_fd = -1;
  bool running = false;
  std::string partial;
  std::ofstream log;
  bool console = true;
  Clock::time_point started;
};

WorkerGroup::WorkerGroup(WorkerSpec spec) : spec_(std::move(spec)) {
  PDSD_CHECK(!spec_.command.empty(), "no command to run");
  PDSD_CHECK(spec_.env_per_worker.size() == spec_.global_ranks.size(), "one environment per worker");
  if (!spec_.log_dir.empty()) std::filesystem::create_directories(spec_.log_dir);
  for (size_t i = 0; i < spec_.global_ranks.size(); ++i) {
    auto* w = new Worker();
    w->exit.local_rank = static_cast<int>(i);
    w->exit.rank = spec_.global_ranks[i];
    w->console = spec_.console && (spec_.console_local_ranks.empty() ||
                                   std::find(spec_.console_local_ranks.begin(), spec_.console_local_ranks.end(),
                                             static_cast<int>(i)) != spec_.console_local_ranks.end());
    if (!spec_.log_dir.empty()) {
      w->exit.log_file = (std::filesystem::path(spec_.log_dir) / str("rank_", w->exit.rank, ".log")).string();
      w->log.open(w->exit.log_file, std::ios::app);
      PDSD_CHECK(w->log.good(), "cannot write the log file ", w->exit.log_file);
    }
    workers_.push_back(w);
  }
  for (size_t i = 0; i < workers_.size(); ++i) spawn(i);
}

WorkerGroup::~WorkerGroup() {
  for (auto* w : workers_) {
    if (w->running) {
      ::kill(-w->exit.pid, SIGKILL);
      ::waitpid(w->exit.pid, nullptr, 0);
    }
    if (w->out_fd >= 0) ::close(w->out_fd);
    delete w;
  }
}

void WorkerGroup::spawn(size_t index) {
  Worker& w = *workers_[index];
  int fds[2];
  PDSD_SYSCALL(::pipe2(fds, O_CLOEXEC));
  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    if (!spec_.env_per_worker[index].count(entry.substr(0, entry.find('=')))) env_strings.push_back(entry);
  }
  for (const auto& [k, v] : spec_.env_per_worker[index]) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp, argv;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = spec_.command;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_t parent = ::getpid();

  pid_t pid = PDSD_SYSCALL(::fork());
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(125);  // the agent died between fork and prctl
    ::dup2(fds[1], STDOUT_FILENO);
    ::dup2(fds[1], STDERR_FILENO);
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    ::signal(SIGUSR1, SIG_DFL);
    ::execvpe(argv[0], argv.data(), envp.data());
    const char msg[] = "pdsd-launch: exec failed: ";
    (void)!::write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)!::write(STDERR_FILENO, argv[0], std::strlen(argv[0]));
    (void)!::write(STDERR_FILENO, "\n", 1);
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also from the parent, so a signal sent right away finds the group
  ::close(fds[1]);
  w.out_fd = fds[0];
  w.exit.pid = pid;
  w.running = true;
  w.started = Clock::now();
  log::debug("started rank ", w.exit.rank, " as pid ", pid);
}

void WorkerGroup::pump(Worker& w) {
  char buffer[8192];
  ssize_t n = ::read(w.out_fd, buffer, sizeof buffer);
  if (n > 0) {
    w.partial.append(buffer, static_cast<size_t>(n));
  } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
    ::close(w.out_fd);  // end of output: the worker and everything it started have exited
    w.out_fd = -1;
    if (!w.partial.empty()) w.partial += '\n';
  } else {
    return;
  }
  size_t start = 0;
  for (size_t nl; (nl = w.partial.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::string line = w.partial.substr(start, nl - start);
    if (w.console) std::cout << "[rank" << w.exit.rank << "]:" << line << "\n" << std::flush;
    if (w.log.is_open()) w.log << line << "\n" << std::flush;
    w.exit.last_lines.push_back(std::move(line));
    if (w.exit.last_lines.size() > kTailLines) w.exit.last_lines.pop_front();
  }
  w.partial.erase(0, start);
}

void WorkerGroup::stop_all(int sig) {
  for (auto* w : workers_) {
    if (w->running) ::kill(-w->exit.pid, sig);
  }
}

void WorkerGroup::catch_stop_signals() {
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGUSR1}) ::sigaction(sig, &action, nullptr);
}

int WorkerGroup::take_pending_signal() { return g_pending_signal.exchange(0); }

GroupResult WorkerGroup::wait() {
  catch_stop_signals();

  GroupResult result;
  std::optional<Clock::time_point> kill_deadline;
  const auto grace = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(spec_.stop_grace_s));
  auto running = [&] {
    return std::any_of(workers_.begin(), workers_.end(), [](Worker* w) { return w->running || w->out_fd >= 0; });
  };
  while (running()) {
    std::vector<pollfd> fds;
    std::vector<Worker*> owners;
    for (auto* w : workers_) {
      if (w->out_fd >= 0) fds.push_back({w->out_fd, POLLIN, 0}), owners.push_back(w);
    }
    int timeout_ms = static_cast<int>(spec_.monitor_interval_s * 1000);
    int ready = ::poll(fds.data(), fds.size(), timeout_ms);
    if (ready < 0 && errno != EINTR) PDSD_SYSCALL(ready);
    for (size_t i = 0; ready > 0 && i < fds.size(); ++i) {
      if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) pump(*owners[i]);
    }
    if (int sig = g_pending_signal.exchange(0); sig != 0) {
      log::warn("received ", signal_name(sig), ": forwarding to ", workers_.size(), " workers");
      stop_all(sig);
      if (sig != SIGUSR1) {
        result.stop_signal = sig;
        kill_deadline = Clock::now() + grace;
      }
    }
    if (int sig = spec_.order ? spec_.order() : 0; sig == SIGUSR1 && !kill_deadline) {
      log::info("checkpoint requested: SIGUSR1 to ", workers_.size(), " workers");
      stop_all(SIGUSR1);
    } else if (sig != 0 && !result.stopped_by_order && !kill_deadline && !result.first_failure) {
      log::warn("the job says stop: ", signal_name(sig), " to ", workers_.size(), " workers");
      result.stopped_by_order = true;
      stop_all(sig);
      kill_deadline = Clock::now() + grace;
    }
    // Reap first, then judge: when one pass finds several workers gone, one killed by a signal is
    // taken as the first failure before one that exited with an error, which is most often a peer's
    // echo (its collective lost the killed worker).
    std::vector<size_t> exited;
    for (size_t i = 0; i < workers_.size(); ++i) {
      Worker& w = *workers_[i];
      if (!w.running) continue;
      int status = 0;
      pid_t done = ::waitpid(w.exit.pid, &status, WNOHANG);
      if (done != w.exit.pid) continue;
      w.running = false;
      w.exit.seconds = std::chrono::duration<double>(Clock::now() - w.started).count();
      if (WIFSIGNALED(status)) w.exit.signal = WTERMSIG(status);
      else w.exit.exit_code = WEXITSTATUS(status);
      ::kill(-w.exit.pid, SIGKILL);  // anything the worker left behind in its group
      exited.push_back(i);
    }
    std::stable_partition(exited.begin(), exited.end(), [&](size_t i) { return workers_[i]->exit.signal != 0; });
    for (size_t i : exited) {
      Worker& w = *workers_[i];
      if (!w.exit.ok() && !result.first_failure && result.stop_signal == 0 && !result.stopped_by_order) {
        result.first_failure = i;
        // While training, no checkpoint can be saved without this rank: SIGKILL, not SIGTERM (which
        // makes pdsd-worker try, and wait for the dead rank until the grace). Once some worker has
        // finished cleanly the job is past training (rank 0 may be writing the export): SIGTERM.
        const bool past_training = std::any_of(workers_.begin(), workers_.end(),
                                               [](const Worker* o) { return !o->running && o->exit.ok(); });
        const int sig = past_training ? SIGTERM : SIGKILL;
        log::error("rank ", w.exit.rank, " (pid ", w.exit.pid, ") failed: ", w.exit.describe(),
                   "; stopping the other workers (", signal_name(sig), ")");
        while (w.out_fd >= 0) pump(w);  // its last lines belong in the report
        if (spec_.on_first_failure) spec_.on_first_failure(w.exit);
        stop_all(sig);
        if (past_training) kill_deadline = Clock::now() + grace;
      }
    }
    if (kill_deadline && Clock::now() > *kill_deadline) {
      log::warn("workers still running ", spec_.stop_grace_s, " s after they were told to stop: sending SIGKILL");
      stop_all(SIGKILL);
      kill_deadline.reset();
    }
  }
  for (auto* w : workers_) {
    while (w->out_fd >= 0) pump(*w);
    result.workers.push_back(w->exit);
  }
  return result;
}

}  // namespace pdsd
