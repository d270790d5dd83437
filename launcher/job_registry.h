// The jobs whose coordinator runs on this machine, as files only their user can read
// (${PDSD_RUNTIME_DIR:-${XDG_RUNTIME_DIR:-/tmp}/pdsd-<uid>}/job-<host>_<port>, mode 0600 in a 0700
// directory): the endpoint and the token. pdsd-ctl finds a local job there without being told, and
// a second agent on the coordinator's host (two shells on one machine) finds a generated token there.
// The token never goes to the console.
//
//   JobRegistration registration(endpoint, token, rdzv_id);   // removed again by its destructor
//   std::vector<RegisteredJob> jobs = registered_jobs();
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace pdsd {

struct RegisteredJob {
  std::string endpoint;
  std::string token;
  std::string rdzv_id;
  pid_t pid = 0;  // the agent hosting the coordinator
  std::string file;
};

class JobRegistration {
 public:
  JobRegistration(const std::string& endpoint, const std::string& token, const std::string& rdzv_id);
  ~JobRegistration();
  JobRegistration(const JobRegistration&) = delete;
  JobRegistration& operator=(const JobRegistration&) = delete;

 private:
  std::string file_;
};

std::string job_registry_dir();
// Jobs whose hosting agent is still alive (stale files are skipped).
std::vector<RegisteredJob> registered_jobs();
std::optional<RegisteredJob> registered_job(const std::string& endpoint);

}  // namespace pdsd
