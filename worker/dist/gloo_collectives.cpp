// Gloo behind the Collectives interface: the c10d TCPStore rendezvous (rendezvous_store.h), libtorch's ProcessGroupGloo
// (created in gloo_process_group.cpp, the one file that sees gloo's headers) for the data, and a
// timeout on every wait.
#include "worker/dist/gloo_collectives.h"

#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include <algorithm>
#include <cstdlib>
#include <sstream>

#include "common/error.h"
#include "common/log.h"
#include "worker/dist/gloo_process_group.h"
#include "worker/dist/rendezvous_store.h"

namespace pdsd::dist {

namespace {

using std::chrono::milliseconds;

bool is_loopback(const std::string& addr) {
  return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1";
}

c10d::ReduceOp to_c10d(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return c10d::ReduceOp(c10d::ReduceOp::SUM);
    case ReduceOp::max: return c10d::ReduceOp(c10d::ReduceOp::MAX);
    case ReduceOp::min: return c10d::ReduceOp(c10d::ReduceOp::MIN);
  }
  throw Error("unknown ReduceOp");
}

class GlooCollectives final : public Collectives {
 public:
  GlooCollectives(const WorkerEnv& env, const GlooCollectivesOptions& options)
      : Collectives(env.rank, env.world_size, options.timeout) {
    milliseconds store_timeout = options.store_timeout.value_or(options.timeout);
    std::string where = str(env.master_addr, ":", env.master_port);
    auto start = std::chrono::steady_clock::now();
    store_ = options.store ? options.store : connect_rendezvous_store(env, store_timeout, options.master_listen_fd);

    GlooDeviceChoice device;
    device.interfaces = options.interfaces;
    // All ranks on this machine (the store is on loopback): keep Gloo's traffic there too, rather
    // than on whatever address the hostname resolves to, which a firewall may block.
    if (device.interfaces.empty() && is_loopback(env.master_addr)) device.hostname = "127.0.0.1";
    try {
      // The group's own timeout bounds connecting (like the store); each collective passes its own.
      backend_ = make_gloo_process_group(store_, env.rank, env.world_size, store_timeout, device);
    } catch (const std::exception& e) {
      throw Error(str("rank ", env.rank, ": connecting the Gloo process group of ", env.world_size,
                      " ranks (rendezvous at ", where, ") failed: ", exception_cause(e)));
    }
    auto ms = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start).count();
    log::info("gloo: rank ", env.rank, " of ", env.world_size, " connected through ", where, " in ", ms, " ms");
  }

  // Members go in reverse order: the process group (joining its worker threads; an op that timed
  // out has already ended, Gloo having given up on it) before the store it was connected through.
  ~GlooCollectives() override = default;

 protected:
  const char* backend_name() const override { return "gloo"; }

  // Gloo moves host memory: a GPU tensor is copied to the host, reduced there, and copied back
  // (through `on_host`), so callers hand every backend the same tensors.
  void run_all_reduce(const at::Tensor& tensor, ReduceOp op, const CollectiveCall& call) override {
    c10d::AllreduceOptions opts;
    opts.reduceOp = to_c10d(op);
    opts.timeout = call.timeout;
    on_host({tensor}, [&](const std::vector<at::Tensor>& t) {
      std::vector<at::Tensor> tensors{t[0]};
      wait(backend_->allreduce(tensors, opts), call);
    });
  }

  void run_broadcast(const at::Tensor& tensor, int root, const CollectiveCall& call) override {
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    opts.rootTensor = 0;
    opts.timeout = call.timeout;
    on_host({tensor}, [&](const std::vector<at::Tensor>& t) {
      std::vector<at::Tensor> tensors{t[0]};
      wait(backend_->broadcast(tensors, opts), call);
    });
  }

  void run_all_gather(const at::Tensor& output_flat, const at::Tensor& input, const CollectiveCall& call) override {
    c10d::AllgatherOptions opts;
    opts.timeout = call.timeout;
    // Flat views: c10d splits the output into world_size equal chunks along dim 0, which for an
    // N-d output would not be "rank r's elements are [r·n, (r+1)·n)".
    on_host({output_flat, input}, [&](const std::vector<at::Tensor>& t) {
      at::Tensor out = t[0].view({-1}), in = t[1].view({-1});
      wait(backend_->_allgather_base(out, in, opts), call);
    });
  }

  void run_reduce_scatter(const at::Tensor& output_shard, const at::Tensor& input_flat, ReduceOp op,
                          const CollectiveCall& call) override {
    c10d::ReduceScatterOptions opts;
    opts.reduceOp = to_c10d(op);
    opts.timeout = call.timeout;
    on_host({output_shard, input_flat}, [&](const std::vector<at::Tensor>& t) {
      at::Tensor out = t[0].view({-1}), in = t[1].view({-1});
      wait(backend_->_reduce_scatter_base(out, in, opts), call);
    });
  }

  void run_barrier(const CollectiveCall& call) override {
    c10d::BarrierOptions opts;
    opts.timeout = call.timeout;
    wait(backend_->barrier(opts), call);
  }

 private:
  // Gloo enforces the per-op timeout itself (each receive gives up after it), which is what normally
  // ends a stuck collective, with Gloo's own cause. The wait's bound is a backstop for any path that
  // does not, so that no call can block for ever.
  static void wait(const c10::intrusive_ptr<c10d::Work>& work, const CollectiveCall& call) {
    milliseconds backstop = call.timeout + std::max(milliseconds(2000), call.timeout / 10);
    work->wait(backstop);
  }

  // Runs `op` on host copies of the tensors that live on a GPU (the others as they are), then copies
  // the first tensor — every operation's output — back where it came from.
  template <class Op>
  static void on_host(const std::vector<at::Tensor>& tensors, Op&& op) {
    std::vector<at::Tensor> host;
    for (const auto& t : tensors) host.push_back(t.is_cpu() ? t : t.cpu());
    op(host);
    if (!tensors[0].is_cpu()) tensors[0].copy_(host[0]);
  }

  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::Backend> backend_;
};

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, ',');) {
    if (!part.empty()) parts.push_back(part);
  }
  return parts;
}

}  // namespace

GlooCollectivesOptions GlooCollectivesOptions::from_job(const JobConfig& job) {
  GlooCollectivesOptions options;
  options.timeout = std::chrono::seconds(job.ddp_timeout);
  if (const char* names = std::getenv("GLOO_SOCKET_IFNAME"); names != nullptr) options.interfaces = split_commas(names);
  return options;
}

std::unique_ptr<Collectives> make_gloo_collectives(const WorkerEnv& env, const GlooCollectivesOptions& options) {
  return std::make_unique<GlooCollectives>(env, options);
}

}  // namespace pdsd::dist
