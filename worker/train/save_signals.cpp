#include "worker/train/save_signals.h"

#include <signal.h>

#include <atomic>

namespace pdsd {

namespace {

// Lock-free atomics: safe to touch from a signal handler.
std::atomic<int> g_save_requested{0};
std::atomic<int> g_stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free);

void on_signal(int sig) {
  if (sig == SIGUSR1) {
    g_save_requested.store(1);
    return;
  }
  if (g_stop_signal.load() != 0) {  // the second stop request: end now
    ::signal(sig, SIG_DFL);
    ::raise(sig);
    return;
  }
  g_stop_signal.store(sig);
}

}  // namespace

void install_save_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // reads and writes in progress carry on
  for (int sig : {SIGUSR1, SIGTERM, SIGINT}) ::sigaction(sig, &action, nullptr);
}

int stop_signal() { return g_stop_signal.load(); }

SaveTriggers::SaveTriggers(double save_minutes)
    : interval_(std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(save_minutes * 60))),
      last_save_(std::chrono::steady_clock::now()) {}

SaveRequest SaveTriggers::poll() {
  if (g_stop_signal.load() != 0) return SaveRequest::save_and_stop;
  if (g_save_requested.exchange(0) != 0) return SaveRequest::save;
  if (interval_.count() > 0 && std::chrono::steady_clock::now() - last_save_ >= interval_) return SaveRequest::save;
  return SaveRequest::none;
}

void SaveTriggers::saved() { last_save_ = std::chrono::steady_clock::now(); }

}  // namespace pdsd
