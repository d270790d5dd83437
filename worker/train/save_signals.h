// Saves requested from outside the step loop: the signals pdsd-launch forwards (as Slurm and
// Kubernetes send them before preemption) and a time interval.
//
//   SIGUSR1           save a checkpoint at the end of the step after the one in progress (steps
//                     are pipelined one deep: worker/train/trainer.h) and go on
//   SIGTERM / SIGINT  save likewise, then stop cleanly; a second one ends the
//                     process at once (as does pdsd-launch's SIGKILL after --stop-grace)
//   save_minutes      save when this many minutes have passed since the last save (0: off)
//
// The handlers only set flags (async-signal-safe); the job polls once per step and the ranks agree
// on the answer (the largest request) through the step's loss all-reduce (TrainerOptions::poll_request),
// so they all save at the same step.
//
//   install_save_signal_handlers();           // worker/main.cpp, before training
//   SaveTriggers triggers(config.save_minutes);
//   SaveRequest r = triggers.poll();          // once per optimizer step; the ranks take the largest
//   ... save ...; triggers.saved();
#pragma once

#include <chrono>

namespace pdsd {

// Ordered so that the max over ranks is the strongest request.
enum class SaveRequest : int { none = 0, save = 1, save_and_stop = 2 };

void install_save_signal_handlers();

// The signal that asked to stop (SIGTERM / SIGINT), 0 if none has.
int stop_signal();

class SaveTriggers {
 public:
  explicit SaveTriggers(double save_minutes);
  // What this process wants now; a SIGUSR1 request is consumed by the call.
  SaveRequest poll();
  // A checkpoint was just saved: the interval restarts.
  void saved();

 private:
  std::chrono::steady_clock::duration interval_{};
  std::chrono::steady_clock::time_point last_save_;
};

}  // namespace pdsd
