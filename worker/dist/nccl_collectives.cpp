#include "worker/dist/nccl_collectives.h"

#include "common/error.h"

#ifdef PDSD_HAVE_CUDA
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>

#include "common/log.h"
#include "worker/cuda_check.h"
#include "worker/dist/rendezvous_store.h"
#endif

namespace pdsd::dist {

#ifndef PDSD_HAVE_CUDA

bool nccl_built() { return false; }

std::unique_ptr<Collectives> make_nccl_collectives(const WorkerEnv&, const NcclCollectivesOptions&) {
  throw InputError("ddp_backend nccl: this build has no CUDA/NCCL (configure with -DPDSD_CUDA=ON); use gloo");
}

#else

bool nccl_built() { return true; }

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

ncclDataType_t nccl_type(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return ncclFloat32;
    case at::kBFloat16: return ncclBfloat16;
    case at::kHalf: return ncclFloat16;
    case at::kDouble: return ncclFloat64;
    case at::kLong: return ncclInt64;
    case at::kInt: return ncclInt32;
    case at::kByte: case at::kBool: return ncclUint8;
    case at::kChar: return ncclInt8;
    default: throw Error(str("nccl: no NCCL type for ", dtype_name(t)));
  }
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return ncclSum;
    case ReduceOp::max: return ncclMax;
    case ReduceOp::min: return ncclMin;
  }
  throw Error("unknown ReduceOp");
}

// Ends the process if `what` is not done by the deadline: a blocking NCCL call (communicator
// initialisation) cannot be given a timeout otherwise.
class DeadlineGuard {
 public:
  DeadlineGuard(std::string what, milliseconds timeout) : what_(std::move(what)) {
    thread_ = std::thread([this, timeout] {
      std::unique_lock lock(mutex_);
      if (!done_cv_.wait_for(lock, timeout, [this] { return done_; })) {
        log::error(what_, " did not complete within ", format_duration(timeout), "; stopping this worker");
        std::_Exit(1);
      }
    });
  }
  ~DeadlineGuard() {
    { std::lock_guard lock(mutex_); done_ = true; }
    done_cv_.notify_all();
    thread_.join();
  }

 private:
  std::string what_;
  std::mutex mutex_;
  std::condition_variable done_cv_;
  bool done_ = false;
  std::thread thread_;
};

class NcclCollectives final : public Collectives {
 public:
  NcclCollectives(const WorkerEnv& env, const NcclCollectivesOptions& options)
      : Collectives(env.rank, env.world_size, options.timeout),
        device_(static_cast<c10::DeviceIndex>(options.device)),
        one_node_(env.local_world_size == env.world_size) {
    const milliseconds store_timeout = options.store_timeout.value_or(options.timeout);
    c10::cuda::CUDAGuard guard(device_);
    auto start = Clock::now();
    store_ = options.store ? options.store : connect_rendezvous_store(env, store_timeout);
    auto& store = store_;
    // One key per communicator of this process and attempt: a second communicator on the same store
    // must not read the first one's id.
    static std::atomic<int> instances{0};
    const std::string key = str("pdsd/nccl_unique_id/attempt_", env.restart_count, "/", instances++);
    ncclUniqueId id;
    if (env.rank == 0) {
      PDSD_NCCL_CHECK(ncclGetUniqueId(&id));
      const auto* bytes = reinterpret_cast<const uint8_t*>(&id);
      store->set(key, std::vector<uint8_t>(bytes, bytes + sizeof id));
    } else {
      try {
        store->wait({key}, store_timeout);
      } catch (const std::exception& e) {
        throw Error(str("rank ", env.rank, ": no NCCL unique id from rank 0 within ", format_duration(store_timeout), ": ",
                        exception_cause(e)));
      }
      std::vector<uint8_t> bytes = store->get(key);
      PDSD_CHECK(bytes.size() == sizeof id, "rank ", env.rank, ": the NCCL unique id in the store has ", bytes.size(),
                 " bytes, not ", sizeof id, " (a peer from another NCCL build?)");
      std::memcpy(&id, bytes.data(), sizeof id);
    }
    {
      DeadlineGuard deadline(str("rank ", env.rank, ": creating the NCCL communicator of ", env.world_size, " ranks on cuda:",
                                 options.device),
                             store_timeout);
      PDSD_NCCL_CHECK(ncclCommInitRank(&comm_, env.world_size, id, env.rank));
    }
    stream_ = c10::cuda::getStreamFromPool(/*isHighPriority=*/true, device_);
    watchdog_ = std::thread([this] { watch(); });
    auto ms = std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
    int version = 0;
    ncclGetVersion(&version);
    log::info("nccl: rank ", env.rank, " of ", env.world_size, " on cuda:", options.device, " connected in ", ms,
              " ms (NCCL ", version, ")");
  }

  ~NcclCollectives() override {
    { std::lock_guard lock(mutex_); stopping_ = true; }
    wake_.notify_all();
    if (watchdog_.joinable()) watchdog_.join();
    // A collective still queued (this rank is unwinding from an error its peers did not share) would
    // never finish, and ncclCommDestroy waits for it: abort instead, which does not wait.
    bool unfinished = false;
    for (auto& p : pending_) {
      unfinished = unfinished || p.done == nullptr || cudaEventQuery(p.done) != cudaSuccess;
      if (p.done != nullptr) cudaEventDestroy(p.done);
    }
    for (cudaEvent_t e : free_events_) cudaEventDestroy(e);
    // Gather memory: deregistered (a local unmapping) and freed while its communicator is still
    // there, once the device is done with it. Memory some tensor still views is left to the process's
    // end rather than freed under it. After a failure the memory goes with the process.
    if (!unfinished && !gather_regions_.empty()) {
      DeadlineGuard deadline(str("rank ", rank(), ": releasing NCCL gather memory"),
                             std::min<milliseconds>(default_timeout(), std::chrono::seconds(60)));
      cudaDeviceSynchronize();
      for (auto& r : gather_regions_) {
        if (r.tensor.use_count() > 1 || r.tensor.storage().use_count() > 1) {  // copies of it, or views
          log::warn("nccl: rank ", rank(), ": ", r.bytes, " bytes of gather memory are still in use at shutdown; not freed");
          continue;
        }
        if (r.window != nullptr) ncclCommWindowDeregister(ce_comm_, r.window);
        ncclMemFree(r.ptr);
      }
    }
    // An abort synchronises the communicator's streams, and a copy-engine all-gather whose peer died
    // waits on the GPU forever: after a failure the copy-engine communicator is left to the process's
    // end, and the first one's abort is bounded.
    if (unfinished) {
      DeadlineGuard deadline(str("rank ", rank(), ": aborting the NCCL communicator"), std::chrono::seconds(30));
      if (comm_ != nullptr) ncclCommAbort(comm_);
    } else {
      if (ce_comm_ != nullptr) ncclCommDestroy(ce_comm_);
      if (comm_ != nullptr) ncclCommDestroy(comm_);
    }
  }

  at::Tensor gather_memory(int64_t numel, const at::TensorOptions& options) override {
    c10::cuda::CUDAGuard guard(device_);
    const auto on_device = options.device(at::Device(at::kCUDA, device_));
    if (!copy_engines_ready()) return at::empty({numel}, on_device);
    const size_t bytes = static_cast<size_t>(numel) * c10::elementSize(c10::typeMetaToScalarType(options.dtype()));
    GatherRegion region{nullptr, std::max<size_t>(bytes, 1), nullptr, {}};
    PDSD_NCCL_CHECK(ncclMemAlloc(&region.ptr, region.bytes));
    try {
      DeadlineGuard deadline(str("rank ", rank(), ": registering ", region.bytes, " bytes of gather memory with NCCL"),
                             default_timeout());
      PDSD_NCCL_CHECK(ncclCommWindowRegister(ce_comm_, region.ptr, region.bytes, &region.window, NCCL_WIN_COLL_SYMMETRIC));
    } catch (...) {
      ncclMemFree(region.ptr);
      throw;
    }
    // The communicator owns the memory (see the destructor): the tensors only borrow it, and the
    // one kept here counts them.
    region.tensor = at::from_blob(region.ptr, {numel}, [](void*) {}, on_device);
    gather_regions_.push_back(region);
    return region.tensor;
  }

  bool gathers_on_copy_engines(std::string* why_not) const override {
    const bool on = ce_comm_ != nullptr;
    if (!on && why_not != nullptr) *why_not = copy_engine_note_.empty() ? "no gather memory was asked for" : copy_engine_note_;
    return on;
  }

  bool agree_on_copy_engines() override {
    c10::cuda::CUDAGuard guard(device_);
    return copy_engines_ready();
  }

  bool reduces_on_gpu() const override { return true; }

 protected:
  const char* backend_name() const override { return "nccl"; }

  void run_all_reduce(const at::Tensor& tensor, ReduceOp op, const CollectiveCall& call) override {
    staged({tensor}, [&](const std::vector<at::Tensor>& t, cudaStream_t s) {
      PDSD_NCCL_CHECK(ncclAllReduce(t[0].data_ptr(), t[0].data_ptr(), static_cast<size_t>(t[0].numel()), nccl_type(t[0]),
                                    nccl_op(op), comm_, s));
    }, call);
  }

  PendingCollective run_all_reduce_async(const at::Tensor& tensor, ReduceOp op, const CollectiveCall& call) override {
    if (tensor.is_cpu()) {  // staged through the GPU and back: nothing to overlap
      run_all_reduce(tensor, op, call);
      return {};
    }
    return staged({tensor}, [&](const std::vector<at::Tensor>& t, cudaStream_t s) {
      PDSD_NCCL_CHECK(ncclAllReduce(t[0].data_ptr(), t[0].data_ptr(), static_cast<size_t>(t[0].numel()), nccl_type(t[0]),
                                    nccl_op(op), comm_, s));
    }, call, /*wait_now=*/false);
  }

  void run_broadcast(const at::Tensor& tensor, int root, const CollectiveCall& call) override {
    staged({tensor}, [&](const std::vector<at::Tensor>& t, cudaStream_t s) {
      PDSD_NCCL_CHECK(ncclBroadcast(t[0].data_ptr(), t[0].data_ptr(), static_cast<size_t>(t[0].numel()), nccl_type(t[0]),
                                    root, comm_, s));
    }, call);
  }

  void run_all_gather(const at::Tensor& output_flat, const at::Tensor& input, const CollectiveCall& call) override {
    issue_all_gather(output_flat, input, call, /*wait_now=*/true);
  }

  PendingCollective run_all_gather_async(const at::Tensor& output_flat, const at::Tensor& input,
                                         const CollectiveCall& call) override {
    if (output_flat.is_cpu() || input.is_cpu()) {
      run_all_gather(output_flat, input, call);
      return {};
    }
    return issue_all_gather(output_flat, input, call, /*wait_now=*/false);
  }

  void run_reduce_scatter(const at::Tensor& output_shard, const at::Tensor& input_flat, ReduceOp op,
                          const CollectiveCall& call) override {
    staged({output_shard, input_flat}, [&](const std::vector<at::Tensor>& t, cudaStream_t s) {
      PDSD_NCCL_CHECK(ncclReduceScatter(t[1].data_ptr(), t[0].data_ptr(), static_cast<size_t>(t[0].numel()),
                                        nccl_type(t[1]), nccl_op(op), comm_, s));
    }, call);
  }

  PendingCollective run_reduce_scatter_async(const at::Tensor& output_shard, const at::Tensor& input_flat, ReduceOp op,
                                             const CollectiveCall& call) override {
    if (output_shard.is_cpu() || input_flat.is_cpu()) {
      run_reduce_scatter(output_shard, input_flat, op, call);
      return {};
    }
    return staged({output_shard, input_flat}, [&](const std::vector<at::Tensor>& t, cudaStream_t s) {
      PDSD_NCCL_CHECK(ncclReduceScatter(t[1].data_ptr(), t[0].data_ptr(), static_cast<size_t>(t[0].numel()),
                                        nccl_type(t[1]), nccl_op(op), comm_, s));
    }, call, /*wait_now=*/false);
  }

  void run_barrier(const CollectiveCall& call) override {
    c10::cuda::CUDAGuard guard(device_);
    at::Tensor one = at::ones({1}, at::TensorOptions().dtype(at::kInt).device(at::kCUDA, device_));
    staged({one}, [&](const std::vector<at::Tensor>& t, cudaStream_t s) {
      PDSD_NCCL_CHECK(ncclAllReduce(t[0].data_ptr(), t[0].data_ptr(), 1, ncclInt32, ncclSum, comm_, s));
    }, call);
    // A barrier is a host-side promise: wait (the watchdog bounds this wait).
    PDSD_CUDA_CHECK(cudaStreamSynchronize(c10::cuda::getCurrentCUDAStream(device_).stream()));
  }

 private:
  struct Pending {
    cudaEvent_t done;  // null while the call is still being issued
    CollectiveCall call;
    Clock::time_point issued;
  };

  // Runs `issue` on the communicator's stream, ordered after the current stream's work and before
  // its later work. CPU tensors go to the GPU and back (the host then waits for them).
  // With wait_now false the current stream is not ordered after the collective yet: the returned
  // handle does that when waited for, and keeps the tensors alive until then.
  // On the copy-engine communicator (`on_copy_engines`) it runs on that communicator's own stream, so
  // a layer's all-gather and another's reduce-scatter run side by side.
  template <class Issue>
  PendingCollective staged(const std::vector<at::Tensor>& tensors, Issue&& issue, const CollectiveCall& call,
                           bool wait_now = true, bool on_copy_engines = false) {
    const c10::cuda::CUDAStream& comm_stream = on_copy_engines ? *ce_stream_ : *stream_;
    c10::cuda::CUDAGuard guard(device_);
    std::vector<at::Tensor> on_gpu;
    bool any_cpu = false;
    for (const auto& t : tensors) {
      nccl_type(t);  // an unsupported dtype fails here, before anything is queued
      PDSD_CHECK(t.is_cpu() || t.device().index() == device_, "nccl: rank ", rank(), " got a tensor on ", t.device().str(),
                 ", not its device cuda:", static_cast<int>(device_));
      any_cpu = any_cpu || t.is_cpu();
      on_gpu.push_back(t.is_cpu() ? t.to(at::Device(at::kCUDA, device_)) : t);
    }
    cudaStream_t current = c10::cuda::getCurrentCUDAStream(device_).stream();
    cudaEvent_t ready = take_event();
    PDSD_CUDA_CHECK(cudaEventRecord(ready, current));
    PDSD_CUDA_CHECK(cudaStreamWaitEvent(comm_stream.stream(), ready, 0));
    // Watched from before the call: NCCL connects peers on a communicator's first collectives, and
    // that blocks this thread until the peer shows up.
    Pending* watched = nullptr;
    {
      std::lock_guard lock(mutex_);
      pending_.push_back({nullptr, call, Clock::now()});
      watched = &pending_.back();  // a deque keeps references on push_back; the watchdog pops done ones only
    }
    // The watchdog is not woken: it polls within 500 ms anyway, far inside any timeout, and waking a
    // thread per collective (hundreds per step under ZeRO-3) costs the issuing host time it lacks.
    try {
      issue(on_gpu, comm_stream.stream());
    } catch (...) {
      // Not queued: it must not stay watched (the watchdog would blame a peer once it timed out).
      {
        std::lock_guard lock(mutex_);
        pending_.pop_back();  // ours: only this thread pushes, and the watchdog never pops an unissued entry
      }
      give_event(ready);
      throw;
    }
    cudaEvent_t done = take_event();
    PDSD_CUDA_CHECK(cudaEventRecord(done, comm_stream.stream()));
    PendingCollective pending;
    if (wait_now) {
      PDSD_CUDA_CHECK(cudaStreamWaitEvent(current, done, 0));
    } else {
      cudaEvent_t mine;  // the handle's own: `done` goes back to the pool once the watchdog retires it
      PDSD_CUDA_CHECK(cudaEventCreateWithFlags(&mine, cudaEventDisableTiming));
      PDSD_CUDA_CHECK(cudaEventRecord(mine, comm_stream.stream()));
      pending = PendingCollective([mine, device = device_, keep = on_gpu] {
        c10::cuda::CUDAGuard guard(device);
        const cudaError_t waited = cudaStreamWaitEvent(c10::cuda::getCurrentCUDAStream(device).stream(), mine, 0);
        cudaEventDestroy(mine);
        PDSD_CUDA_CHECK(waited);
      });
    }
    give_event(ready);  // recorded work keeps its own reference; the handle can be reused once done is
    {
      std::lock_guard lock(mutex_);
      watched->done = done;
    }
    if (any_cpu) {
      for (size_t i = 0; i < tensors.size(); ++i) {
        if (tensors[i].is_cpu()) tensors[i].copy_(on_gpu[i]);  // a blocking copy: the host waits here
      }
    }
    return pending;
  }

  // An all-gather between gather memory goes to the copy-engine communicator, any other to the first.
  PendingCollective issue_all_gather(const at::Tensor& output_flat, const at::Tensor& input, const CollectiveCall& call,
                                     bool wait_now) {
    const bool ce = in_gather_window(output_flat) && in_gather_window(input);
    return staged({output_flat, input}, [&](const std::vector<at::Tensor>& t, cudaStream_t s) {
      PDSD_NCCL_CHECK(ncclAllGather(t[1].data_ptr(), t[0].data_ptr(), static_cast<size_t>(t[1].numel()), nccl_type(t[1]),
                                    ce ? ce_comm_.load() : comm_, s));
    }, call, wait_now, ce);
  }

  cudaEvent_t take_event() {
    std::lock_guard lock(mutex_);
    if (!free_events_.empty()) {
      cudaEvent_t e = free_events_.back();
      free_events_.pop_back();
      return e;
    }
    cudaEvent_t e;
    PDSD_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    return e;
  }
  void give_event(cudaEvent_t e) {
    std::lock_guard lock(mutex_);
    free_events_.push_back(e);
  }

  // The watchdog: retires completed collectives; ends the process on a timeout or an NCCL error.
  void watch() {
    cudaSetDevice(device_);
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      wake_.wait_for(lock, milliseconds(pending_.empty() ? 500 : 20));
      while (!pending_.empty()) {
        Pending& p = pending_.front();
        cudaError_t state = p.done == nullptr ? cudaErrorNotReady : cudaEventQuery(p.done);
        if (state == cudaSuccess) {
          free_events_.push_back(p.done);
          pending_.pop_front();
          continue;
        }
        if (state != cudaErrorNotReady) {
          fail(str(p.call.describe(), " failed on the GPU: ", cudaGetErrorString(state)));
        }
        if (Clock::now() - p.issued > p.call.timeout) {
          fail(str(p.call.describe(), " did not complete within ", format_duration(p.call.timeout),
                   " (nccl): a peer died, hung, or issued a different collective"));
        }
        break;
      }
      for (ncclComm_t c : {comm_, ce_comm_.load()}) {
        ncclResult_t async = ncclSuccess;
        if (c != nullptr && ncclCommGetAsyncError(c, &async) == ncclSuccess && async != ncclSuccess && async != ncclInProgress) {
          fail(str("NCCL reported an asynchronous error: ", ncclGetErrorString(async), " (set NCCL_DEBUG=WARN for details)"));
        }
      }
    }
  }

  [[noreturn]] void fail(const std::string& what) {
    log::error("rank ", rank(), ": ", what, "; aborting the communicator and stopping this worker");
    // An abort synchronises the communicator's streams; one that a dead peer's copy-engine all-gather
    // holds up never returns. The worker stops within 10 s either way.
    std::thread([] {
      std::this_thread::sleep_for(std::chrono::seconds(10));
      std::_Exit(1);
    }).detach();
    if (ce_comm_.load() == nullptr) ncclCommAbort(comm_);
    std::_Exit(1);
  }

  // Copy-engine all-gathers: on first use, a second communicator split from the first with CTA
  // policy zero (NCCL then moves an all-gather between symmetric windows with cudaMemcpy on the copy
  // engines, one node only) and its own stream. False, with copy_engine_note_ saying why, where this
  // NCCL or machine cannot.
  bool copy_engines_ready() {
    if (ce_comm_ != nullptr) return true;
    if (!copy_engine_note_.empty()) return false;
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 28, 0)
    int version = 0;
    ncclGetVersion(&version);
    // NCCL routes an all-gather to the copy engines only on one node, with symmetric memory (peer
    // access, NCCL_WIN_ENABLE and NCCL_CUMEM_ENABLE not 0) and CTA policy zero, which NCCL_CTA_POLICY
    // would override. Anything else would silently run kernels on a second communicator beside the
    // first, so it is ruled out here, where it can be said.
    auto env_is = [](const char* name, const char* value) {
      const char* v = std::getenv(name);
      return v != nullptr && std::string(v) == value;
    };
    const char* cta_policy = std::getenv("NCCL_CTA_POLICY");
    if (version < NCCL_VERSION(2, 28, 0)) {
      copy_engine_note_ = str("NCCL ", version, " at run time has no copy-engine all-gathers (2.28 or later has)");
    } else if (!one_node_) {
      copy_engine_note_ = "the job spans more than one node (NCCL's copy-engine all-gathers stay within one)";
    } else if (env_is("NCCL_WIN_ENABLE", "0") || env_is("NCCL_CUMEM_ENABLE", "0")) {
      copy_engine_note_ = "NCCL_WIN_ENABLE=0 or NCCL_CUMEM_ENABLE=0 turns NCCL's symmetric memory off";
    } else if (cta_policy != nullptr && std::string(cta_policy) != "2") {
      copy_engine_note_ = str("NCCL_CTA_POLICY=", cta_policy, " overrides the zero-CTA policy copy-engine all-gathers need");
    } else if (!peers_reachable()) {
      copy_engine_note_ = "this GPU cannot access every other visible GPU directly (no peer access)";
    }
    // The split is collective: every rank must take this path or none (a rank that split alone would
    // wait for its peers until the timeout), so the ranks agree first.
    at::Tensor able = at::full({1}, copy_engine_note_.empty() ? 1 : 0, at::kInt);
    all_reduce(able, ReduceOp::min);
    if (able.item<int>() == 0 && copy_engine_note_.empty()) {
      copy_engine_note_ = "another rank cannot use copy-engine all-gathers (its log says why)";
    }
    if (copy_engine_note_.empty()) {
      ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
      config.CTAPolicy = NCCL_CTA_POLICY_ZERO;
      config.splitShare = 0;  // its own internal stream: sharing would queue its gathers behind comm_'s work
      ncclComm_t ce = nullptr;
      {
        DeadlineGuard deadline(str("rank ", rank(), ": creating the copy-engine NCCL communicator"), default_timeout());
        PDSD_NCCL_CHECK(ncclCommSplit(comm_, /*color=*/0, /*key=*/rank(), &ce, &config));
      }
      ce_stream_ = c10::cuda::getStreamFromPool(/*isHighPriority=*/true, device_);
      ce_comm_ = ce;
      log::info("nccl: rank ", rank(), ": layer all-gathers between gather memory go to the copy engines (CTA policy zero)");
      return true;
    }
#else
    copy_engine_note_ = "this build's NCCL headers predate copy-engine all-gathers (2.28)";
#endif
    log::info("nccl: rank ", rank(), ": ", copy_engine_note_, "; all-gathers stay on SMs");
    return false;
  }

  // Peer access from this GPU to every other one this process sees (all of the node's when the
  // launcher leaves CUDA_VISIBLE_DEVICES alone; else the check covers what it can).
  bool peers_reachable() const {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) return false;
    for (int other = 0; other < count; ++other) {
      int can = 0;
      if (other != device_ && (cudaDeviceCanAccessPeer(&can, device_, other) != cudaSuccess || can == 0)) return false;
    }
    return true;
  }

  bool in_gather_window(const at::Tensor& t) const {
    const auto* p = static_cast<const char*>(t.data_ptr());
    const size_t n = static_cast<size_t>(t.numel()) * t.element_size();
    for (const auto& r : gather_regions_) {
      const auto* base = static_cast<const char*>(r.ptr);
      if (r.window != nullptr && p >= base && p + n <= base + r.bytes) return true;
    }
    return false;
  }

  struct GatherRegion {
    void* ptr;
    size_t bytes;
    ncclWindow_t window;
    at::Tensor tensor;  // the region as handed out: its use counts say whether anyone still holds it
  };

  c10::DeviceIndex device_;
  bool one_node_;  // every rank on this node (NCCL's copy-engine all-gathers need that)
  // Kept for the communicator's life: rank 0 hosts it, and a peer may still be reading from it.
  c10::intrusive_ptr<c10d::Store> store_;
  ncclComm_t comm_ = nullptr;
  std::optional<c10::cuda::CUDAStream> stream_;  // set once the device is chosen
  std::atomic<ncclComm_t> ce_comm_{nullptr};     // read by the watchdog
  std::optional<c10::cuda::CUDAStream> ce_stream_;
  std::string copy_engine_note_;                 // why there are no copy-engine all-gathers
  std::vector<GatherRegion> gather_regions_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> pending_;
  std::vector<cudaEvent_t> free_events_;
  bool stopping_ = false;
  std::thread watchdog_;
};

}  // namespace

std::unique_ptr<Collectives> make_nccl_collectives(const WorkerEnv& env, const NcclCollectivesOptions& options) {
  return std::make_unique<NcclCollectives>(env, options);
}

#endif

}  // namespace pdsd::dist
