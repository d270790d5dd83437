// pdsd-launch as a user runs it: torchrun's environment, rank-prefixed output and log files, the first
// failure stopping the group with its root cause named, restarts, signal forwarding, and no worker
// outliving its agent.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/support/run_command.h"

namespace fs = std::filesystem;
using pdsd::testing::run_command;

namespace {

const std::string kLaunch = std::string(PDSD_BIN_DIR) + "/pdsd-launch";

fs::path fresh_dir(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("pdsd-test-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

bool process_alive(pid_t pid) {
  if (::kill(pid, 0) != 0) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string pid_field, comm, state;
  stat >> pid_field >> comm >> state;
  return state != "Z";  // a zombie has exited; only its parent's reaping is left
}

TEST(LauncherLifecycle, WorkersGetTorchrunEnvironment) {
  auto r = run_command(kLaunch + " --nproc 3 --master-port 29999 -- sh -c "
                       "'echo env $RANK $LOCAL_RANK $WORLD_SIZE $LOCAL_WORLD_SIZE $GROUP_RANK $MASTER_ADDR $MASTER_PORT'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (int rank = 0; rank < 3; ++rank) {
    std::string want = "[rank" + std::to_string(rank) + "]:env " + std::to_string(rank) + " " + std::to_string(rank) +
                       " 3 3 0 127.0.0.1 29999";
    EXPECT_NE(r.output.find(want), std::string::npos) << want << "\n" << r.output;
  }
}

TEST(LauncherLifecycle, PetVariablesActAsOptions) {
  auto r = run_command("env PET_NPROC_PER_NODE=2 PET_MASTER_PORT=29123 " + kLaunch + " -- sh -c 'echo port $MASTER_PORT of $WORLD_SIZE'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("[rank1]:port 29123 of 2"), std::string::npos) << r.output;
}

TEST(LauncherLifecycle, FirstFailureStopsTheGroupAndNamesTheRootCause) {
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_command(kLaunch + " --nproc 3 --stop-grace 5 -- sh -c "
                       "'if [ $RANK = 1 ]; then echo about to fail; exit 3; fi; sleep 60'");
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_LT(seconds, 20) << "the other workers were not stopped";
  EXPECT_NE(r.output.find("root cause : rank 1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("status     : exit code 3"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("    about to fail"), std::string::npos) << r.output;
}

// A worker killed by a signal and a peer that exited with an error found gone in the same check:
// the killed one is the root cause (the error exit is most often its echo, a collective that lost
// it), even though the error exit came first in time and in rank order. The background sleep keeps
// each worker's output open, so only the 2 s monitor interval wakes the check.
TEST(LauncherLifecycle, KilledWorkerIsTheRootCauseOverAnErrorExitFoundWithIt) {
  auto r = run_command(kLaunch + " --nproc 2 --monitor-interval 2 --stop-grace 5 -- sh -c "
                       "'(sleep 30 &); if [ $RANK = 0 ]; then sleep 0.2; exit 3; fi; sleep 0.4; kill -9 $$'");
  EXPECT_EQ(r.exit_code, 128 + SIGKILL) << r.output;
  EXPECT_NE(r.output.find("root cause : rank 1"), std::string::npos) << r.output;
}

// Workers that catch SIGTERM to save a checkpoint (as pdsd-worker does) would wait for the dead rank
// until --stop-grace: after a failure nothing can be saved, so the others are killed at once and the
// restart does not wait out the grace.
TEST(LauncherLifecycle, FailureStopsWorkersThatCatchSigtermWithoutWaitingOutTheGrace) {
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_command(kLaunch + " --nproc 2 --stop-grace 30 --max-restarts 1 -- sh -c "
                       "'if [ $TORCHELASTIC_RESTART_COUNT = 1 ]; then echo second attempt; exit 0; fi; "
                       "if [ $RANK = 1 ]; then sleep 0.5; exit 3; fi; trap \"echo got TERM\" TERM; "
                       "while true; do sleep 0.1; done'");
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("[rank0]:second attempt"), std::string::npos) << r.output;
  EXPECT_LT(seconds, 10) << "the restart waited for a worker that catches SIGTERM\n" << r.output;
}

TEST(LauncherLifecycle, SignalDeathIsReportedByName) {
  auto r = run_command(kLaunch + " --nproc 2 --stop-grace 5 -- sh -c 'if [ $RANK = 0 ]; then kill -SEGV $$; fi; sleep 60'");
  EXPECT_EQ(r.exit_code, 128 + SIGSEGV) << r.output;
  EXPECT_NE(r.output.find("killed by SIGSEGV (11)"), std::string::npos) << r.output;
}

TEST(LauncherLifecycle, RestartsTheGroupWithinMaxRestarts) {
  auto r = run_command(kLaunch + " --nproc 2 --max-restarts 2 -- sh -c "
                       "'echo attempt $TORCHELASTIC_RESTART_COUNT; [ $TORCHELASTIC_RESTART_COUNT -ge 1 ]'");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // In attempt 0 whichever rank fails first stops the other, perhaps before it printed: look for any rank.
  EXPECT_NE(r.output.find("]:attempt 0"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("[rank0]:attempt 1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("[rank1]:attempt 1"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("]:attempt 2"), std::string::npos) << r.output;
}

TEST(LauncherLifecycle, GivesUpAfterMaxRestarts) {
  auto r = run_command(kLaunch + " --nproc 1 --max-restarts 1 -- sh -c 'exit 5'");
  EXPECT_EQ(r.exit_code, 5) << r.output;
  EXPECT_NE(r.output.find("giving up after 2 attempt(s)"), std::string::npos) << r.output;
}

TEST(LauncherLifecycle, LogFilesPerRankAndRedirects) {
  auto dir = fresh_dir("logs");
  auto r = run_command(kLaunch + " --nproc 2 --log-dir " + dir.string() + " --redirects 3 -- sh -c 'echo hello from $RANK'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("[rank"), std::string::npos) << "--redirects must keep worker output off the console";
  std::ifstream log(dir / "attempt_0" / "rank_1.log");
  std::string line;
  std::getline(log, line);
  EXPECT_EQ(line, "hello from 1");
  fs::remove_all(dir);
}

TEST(LauncherLifecycle, LocalRanksFilter) {
  auto r = run_command(kLaunch + " --nproc 3 --local-ranks-filter 0,2 -- sh -c 'echo hi'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("[rank2]:hi"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("[rank1]:hi"), std::string::npos) << r.output;
}

TEST(LauncherLifecycle, BadConfigFailsBeforeAnyWorkerStarts) {
  auto r = run_command(kLaunch + " --nproc 2 configs/sft.yaml learning_rat=1e-4");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("did you mean 'learning_rate'"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("starting"), std::string::npos) << r.output;
}

TEST(LauncherLifecycle, BadOptionsAreClearErrors) {
  auto r = run_command(kLaunch + " --nproc 0 -- true");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--nproc"), std::string::npos) << r.output;
  r = run_command(kLaunch + " --nproc 1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("nothing to run"), std::string::npos) << r.output;
}

TEST(LauncherLifecycle, SigtermIsForwardedToWorkers) {
  auto dir = fresh_dir("sigterm");
  pid_t agent = ::fork();
  if (agent == 0) {
    std::string script = "trap 'echo got-term > " + dir.string() + "/term.$RANK; exit 0' TERM; "
                         "touch " + dir.string() + "/up.$RANK; while true; do sleep 0.1; done";
    ::execl(kLaunch.c_str(), kLaunch.c_str(), "--nproc", "2", "--redirects", "0", "--", "sh", "-c", script.c_str(), nullptr);
    ::_exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!(fs::exists(dir / "up.0") && fs::exists(dir / "up.1")) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(fs::exists(dir / "up.1")) << "workers did not start";
  ::kill(agent, SIGTERM);
  int status = 0;
  ::waitpid(agent, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGTERM) << status;
  EXPECT_TRUE(fs::exists(dir / "term.0"));
  EXPECT_TRUE(fs::exists(dir / "term.1"));
  fs::remove_all(dir);
}

TEST(LauncherLifecycle, NoWorkerOutlivesAKilledAgent) {
  auto dir = fresh_dir("orphans");
  pid_t agent = ::fork();
  if (agent == 0) {
    std::string script = "echo $$ > " + dir.string() + "/pid.$RANK.tmp && mv " + dir.string() + "/pid.$RANK.tmp " +
                         dir.string() + "/pid.$RANK; exec sleep 300";
    ::execl(kLaunch.c_str(), kLaunch.c_str(), "--nproc", "2", "--", "sh", "-c", script.c_str(), nullptr);
    ::_exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!(fs::exists(dir / "pid.0") && fs::exists(dir / "pid.1")) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(fs::exists(dir / "pid.1")) << "workers did not start";
  std::vector<pid_t> workers;
  for (const char* f : {"pid.0", "pid.1"}) {
    pid_t pid = 0;
    std::ifstream(dir / f) >> pid;
    workers.push_back(pid);
  }
  ::kill(agent, SIGKILL);
  ::waitpid(agent, nullptr, 0);
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (pid_t pid : workers) {
    while (process_alive(pid) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_FALSE(process_alive(pid)) << "worker " << pid << " survived its agent";
    if (process_alive(pid)) ::kill(pid, SIGKILL);
  }
  fs::remove_all(dir);
}

}  // namespace
