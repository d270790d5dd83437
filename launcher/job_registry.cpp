#include "launcher/job_registry.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "common/log.h"

namespace pdsd {

namespace fs = std::filesystem;

std::string job_registry_dir() {
  if (const char* dir = std::getenv("PDSD_RUNTIME_DIR"); dir != nullptr && *dir != '\0') return dir;
  const char* base = std::getenv("XDG_RUNTIME_DIR");
  return str(base != nullptr && *base != '\0' ? base : "/tmp", "/pdsd-", ::getuid());
}

namespace {
std::string file_for(const std::string& endpoint) {
  std::string name = endpoint;
  for (char& c : name) {
    if (c == ':' || c == '/' || c == '[' || c == ']') c = '_';
  }
  return job_registry_dir() + "/job-" + name;
}
}  // namespace

JobRegistration::JobRegistration(const std::string& endpoint, const std::string& token, const std::string& rdzv_id) {
  const std::string dir = job_registry_dir();
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    log::warn("cannot create ", dir, " (", std::strerror(errno), "): pdsd-ctl will need --endpoint and --token");
    return;
  }
  struct stat info {};
  if (::stat(dir.c_str(), &info) != 0 || info.st_uid != ::getuid() || (info.st_mode & 077) != 0) {
    log::warn(dir, " is not private to this user: not writing the job's token there");
    return;
  }
  const std::string file = file_for(endpoint);
  const std::string tmp = file + ".tmp" + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return;
  std::string text = str("endpoint=", endpoint, "\ntoken=", token, "\nrdzv_id=", rdzv_id, "\npid=", ::getpid(), "\n");
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (ok && ::rename(tmp.c_str(), file.c_str()) == 0) file_ = file;
  else ::unlink(tmp.c_str());
}

JobRegistration::~JobRegistration() {
  if (!file_.empty()) ::unlink(file_.c_str());
}

std::vector<RegisteredJob> registered_jobs() {
  std::vector<RegisteredJob> jobs;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(job_registry_dir(), error)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("job-", 0) != 0 || name.find(".tmp") != std::string::npos) continue;
    std::ifstream in(entry.path());
    RegisteredJob job;
    job.file = entry.path().string();
    for (std::string line; std::getline(in, line);) {
      auto eq = line.find('=');
      if (eq == std::string::npos) continue;
      std::string key = line.substr(0, eq), value = line.substr(eq + 1);
      if (key == "endpoint") job.endpoint = value;
      else if (key == "token") job.token = value;
      else if (key == "rdzv_id") job.rdzv_id = value;
      else if (key == "pid") job.pid = static_cast<pid_t>(std::atoi(value.c_str()));
    }
    if (job.endpoint.empty() || job.pid <= 0 || ::kill(job.pid, 0) != 0) continue;  // its agent is gone
    jobs.push_back(job);
  }
  return jobs;
}

std::optional<RegisteredJob> registered_job(const std::string& endpoint) {
  for (auto& job : registered_jobs()) {
    if (job.endpoint == endpoint) return job;
  }
  return std::nullopt;
}

}  // namespace pdsd
