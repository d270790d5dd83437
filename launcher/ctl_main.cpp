// pdsd-ctl: ask a running job's coordinator for its status, a checkpoint now, or a graceful stop.
//
//   pdsd-ctl status                                   # the one job whose coordinator runs on this host
//   pdsd-ctl status --endpoint node0:29400            # token from PDSD_JOB_TOKEN or --token
//   pdsd-ctl checkpoint                               # SIGUSR1 to every worker: save at the next step
//   pdsd-ctl stop                                     # SIGTERM to every worker, grace, then SIGKILL
//
// Exit codes: 0 done, 1 the coordinator refused or could not be reached, 2 bad usage.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "common/error.h"
#include "common/log.h"
#include "common/main_guard.h"
#include "launcher/coordinator_client.h"
#include "launcher/coordinator_service.h"
#include "launcher/job_registry.h"

namespace {

using std::chrono::milliseconds;

std::string fixed(double value, int digits) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", digits, value);
  return text;
}

void print_status(const pdsd::v1::StatusResponse& s) {
  std::cout << "job " << s.rdzv_id() << ": " << pdsd::job_state_name(s.state()) << ", attempt " << s.attempt()
            << ", restarts " << s.restart_count() << " of " << s.max_restarts() << ", world size " << s.world_size()
            << ", up " << fixed(s.uptime_s(), 1) << " s\n";
  if (!s.reason().empty()) std::cout << "reason: " << s.reason() << "\n";
  if (s.has_root_cause()) {
    const auto& r = s.root_cause();
    std::cout << "root cause: " << (r.rank() >= 0 ? pdsd::str("rank ", r.rank()) : pdsd::str("node ", r.node_rank())) << " on "
              << r.hostname() << ": " << r.description() << " (attempt " << r.attempt() << ")\n";
  }
  std::cout << "\n  node  host                       workers    ranks      heartbeat\n";
  for (const auto& n : s.nodes()) {
    char line[256];
    std::snprintf(line, sizeof line, "  %4d  %-25s  %-9s  %4d..%-4d %7s s ago\n", n.node_rank(), n.hostname().c_str(), n.workers().c_str(),
                  n.rank_offset(), n.rank_offset() + n.nproc() - 1, fixed(n.heartbeat_age_s(), 1).c_str());
    std::cout << line;
  }
  std::cout << "\n  rank  node  attempt      step        loss    tokens/s   reported\n";
  for (const auto& r : s.ranks()) {
    char line[256];
    if (r.report_age_s() < 0) {
      std::snprintf(line, sizeof line, "  %4d  %4d        -         -           -           -   never\n", r.rank(), r.node_rank());
    } else {
      std::snprintf(line, sizeof line, "  %4d  %4d  %7d  %8lld  %10.4f  %10.1f  %5s s ago\n", r.rank(), r.node_rank(), r.attempt(),
                    static_cast<long long>(r.step()), r.loss(), r.tokens_per_s(), fixed(r.report_age_s(), 1).c_str());
    }
    std::cout << line;
  }
}

int run(int argc, char** argv) {
  CLI::App app{"pdsd-ctl: status, checkpoint now, or graceful stop of a running pdsd job"};
  std::string endpoint, token, tls_cert, tls_key, tls_ca, reason;
  double timeout_s = 10;
  app.require_subcommand(1, 1);
  app.fallthrough();  // options before or after the subcommand
  app.add_option("--endpoint", endpoint, "coordinator host:port (default: the one job registered on this host)")->envname("PDSD_CONTROL_ENDPOINT");
  app.add_option("--token", token, "the job's token (default: PDSD_JOB_TOKEN, or the registry for a local job)")->envname("PDSD_JOB_TOKEN");
  app.add_option("--tls-cert", tls_cert, "PEM client certificate for mutual TLS")->envname("PDSD_TLS_CERT");
  app.add_option("--tls-key", tls_key, "PEM key of --tls-cert")->envname("PDSD_TLS_KEY");
  app.add_option("--tls-ca", tls_ca, "PEM CA of the coordinator's certificate")->envname("PDSD_TLS_CA");
  app.add_option("--timeout", timeout_s, "seconds to wait for the answer")->check(CLI::Range(0.1, 600.0));
  auto* status = app.add_subcommand("status", "job state, attempt, restarts; per node and per rank: step, loss, tokens/s, last report");
  auto* checkpoint = app.add_subcommand("checkpoint", "every worker saves a checkpoint at its next step boundary (SIGUSR1)");
  auto* stop = app.add_subcommand("stop", "graceful stop: SIGTERM to every worker, the grace period, then SIGKILL; the job ends");
  stop->add_option("--reason", reason, "recorded in the job's status and logs");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  pdsd::log::init({.prefix = "pdsd-ctl", .level = pdsd::log::level_from_env().value_or(pdsd::log::Level::warn)});

  if (endpoint.empty()) {
    auto jobs = pdsd::registered_jobs();
    if (jobs.empty()) throw pdsd::InputError("no job's coordinator runs on this host: give --endpoint host:port");
    if (jobs.size() > 1) {
      std::string list;
      for (const auto& j : jobs) list += pdsd::str("\n  ", j.endpoint, " (job ", j.rdzv_id, ", agent pid ", j.pid, ")");
      throw pdsd::InputError(pdsd::str(jobs.size(), " jobs run on this host; pick one with --endpoint:", list));
    }
    endpoint = jobs.front().endpoint;
    if (token.empty()) token = jobs.front().token;
  }
  if (token.empty()) {
    if (auto job = pdsd::registered_job(endpoint)) token = job->token;
  }
  if (token.empty()) throw pdsd::InputError(pdsd::str("no token for ", endpoint, ": give --token or set PDSD_JOB_TOKEN"));
  pdsd::ControlSecurity security{.token = token, .tls_cert = tls_cert, .tls_key = tls_key, .tls_ca = tls_ca};
  pdsd::validate_tls_files(security);
  pdsd::CoordinatorClient client(endpoint, security);
  const auto timeout = milliseconds(static_cast<int64_t>(timeout_s * 1000));

  grpc::Status s;
  if (status->parsed()) {
    pdsd::v1::StatusResponse out;
    s = client.status(timeout, out);
    if (s.ok()) print_status(out);
  } else if (checkpoint->parsed()) {
    pdsd::v1::CheckpointResponse out;
    s = client.checkpoint(timeout, out);
    if (s.ok()) std::cout << "checkpoint request " << out.checkpoint_seq() << " sent: every agent signals its workers (SIGUSR1)\n";
  } else if (stop->parsed()) {
    pdsd::v1::StopResponse out;
    s = client.stop(reason, timeout, out);
    if (s.ok()) std::cout << "job " << pdsd::job_state_name(out.state()) << ": workers get SIGTERM, then SIGKILL after the grace period\n";
  }
  if (!s.ok()) {
    std::cerr << "pdsd-ctl: " << endpoint << ": " << pdsd::describe(s) << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return pdsd::guarded_main(run, argc, argv); }
