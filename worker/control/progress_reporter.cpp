#include "worker/control/progress_reporter.h"

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <thread>

#include "common/log.h"
#include "launcher/control_security.h"
#include "pdsd/control.grpc.pb.h"

namespace pdsd {

namespace {

// Long enough for a loaded coordinator, short enough that a dead one costs the sender thread little.
constexpr auto kDeadline = std::chrono::milliseconds(1000);

std::string env_or_empty(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

class GrpcProgressReporter final : public ProgressReporter {
 public:
  GrpcProgressReporter(const std::string& endpoint, ControlSecurity security, int rank, int attempt)
      : security_(std::move(security)), stub_(v1::Coordinator::NewStub(control_channel(endpoint, security_))),
        rank_(rank), attempt_(attempt) {
    thread_ = std::thread([this] { run(); });
  }

  ~GrpcProgressReporter() override {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

  void report(int64_t step, double loss, double tokens_per_s) override {
    {
      std::lock_guard lock(mutex_);
      v1::ProgressRequest request;
      request.set_protocol_version(v1::PROTOCOL_VERSION);
      request.set_rank(rank_);
      request.set_attempt(attempt_);
      request.set_step(step);
      request.set_loss(loss);
      request.set_tokens_per_s(tokens_per_s);
      pending_ = std::move(request);  // a newer report replaces one not sent yet
    }
    wake_.notify_one();
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return stop_ || pending_.has_value(); });
      if (!pending_) return;  // stopping with nothing left to send
      v1::ProgressRequest request = std::move(*pending_);
      pending_.reset();
      const bool last = stop_;
      lock.unlock();
      grpc::ClientContext context;
      prepare_call(context, security_, kDeadline);
      v1::ProgressResponse response;
      grpc::Status s = stub_->ReportProgress(&context, request, &response);
      if (!s.ok() && !warned_) {
        warned_ = true;  // once: the coordinator may simply be gone, and training goes on regardless
        log::debug("progress report to the coordinator failed (", s.error_message(), "); training goes on");
      }
      lock.lock();
      if (last) return;
    }
  }

  ControlSecurity security_;
  std::unique_ptr<v1::Coordinator::Stub> stub_;
  const int rank_, attempt_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::optional<v1::ProgressRequest> pending_;
  bool stop_ = false;
  bool warned_ = false;
  std::thread thread_;
};

}  // namespace

std::unique_ptr<ProgressReporter> ProgressReporter::from_env(int rank, int attempt) {
  const std::string endpoint = env_or_empty("PDSD_CONTROL_ENDPOINT");
  if (endpoint.empty()) return nullptr;
  ControlSecurity security{.token = env_or_empty("PDSD_JOB_TOKEN"), .tls_cert = env_or_empty("PDSD_TLS_CERT"),
                           .tls_key = env_or_empty("PDSD_TLS_KEY"), .tls_ca = env_or_empty("PDSD_TLS_CA")};
  try {
    return std::make_unique<GrpcProgressReporter>(endpoint, std::move(security), rank, attempt);
  } catch (const std::exception& e) {
    log::warn("no progress reports to ", endpoint, ": ", e.what());
    return nullptr;
  }
}

}  // namespace pdsd
