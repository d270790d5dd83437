// The collectives the training engine uses (DDP gradient all-reduce, ZeRO's all-gather and
// reduce-scatter, broadcast of initial weights, barriers), independent of the backend that moves the
// bytes: Gloo on CPU (gloo_collectives.h), NCCL on GPUs (nccl_collectives.h).
//
//   std::unique_ptr<Collectives> c = make_gloo_collectives(env, GlooCollectivesOptions::from_job(job));
//   c->all_reduce(grads);                                  // in place, sum, job's ddp_timeout
//   c->broadcast(weights, /*root=*/0);
//   c->all_gather(full_flat, my_shard);                    // full_flat = world_size × my_shard
//   c->reduce_scatter(my_shard, full_flat, ReduceOp::sum, std::chrono::seconds(10));  // own timeout
//   c->barrier();
//
// Every call blocks until the collective is done (NCCL: is ordered on the caller's current CUDA stream,
// so any later work on that stream sees the result, without the host waiting) and has a timeout (the default one, from the job's
// `ddp_timeout`, or the one passed). A collective that does not finish in time — a peer died, hung,
// or issued a different collective — throws pdsd::Error naming this rank, the operation and its size:
//   rank 1: all_reduce of 121408 float32 elements (485632 bytes) did not complete within 30 s (...)
// It never hangs. After any failure the group is out of step with its peers (no backend can cancel
// or resynchronise a half-done collective), so every later call throws at once, naming that first
// failure; the job has to stop (or restart its workers) rather than continue.
//
// Every rank must issue the same collectives in the same order with tensors of the same size and
// dtype, as with torch.distributed. Tensors must be contiguous; results are exact for integer types
// (the reductions are plain sums, with no averaging or scaling).
#pragma once

#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <utility>

namespace pdsd::dist {

// The reductions every backend has. (There is no `avg`: Gloo lacks it, and the engine divides by the
// token count anyway, which it needs for gradient accumulation too.)
enum class ReduceOp { sum, max, min };

const char* to_string(ReduceOp op);

using Timeout = std::optional<std::chrono::milliseconds>;  // unset: the default timeout

// One collective as named in errors: "all_reduce of 121408 float32 elements (485632 bytes)".
struct CollectiveCall {
  const char* op = "";
  int64_t numel = 0;        // elements of the largest buffer involved; 0 for a barrier
  std::string dtype;        // "float32", "bfloat16", ...
  int64_t element_size = 0; // bytes per element
  std::chrono::milliseconds timeout{0};
  std::string describe() const;
};

// "float32" for at::kFloat: the names users know from torch (torch.float32), not ATen's "Float".
std::string dtype_name(const at::Tensor& tensor);

// A collective issued without waiting for it (Collectives::all_reduce_async). wait() makes what the
// caller does next see its result: with NCCL the caller's current CUDA stream is ordered after it
// (the host still does not wait); backends without streams had finished it already. The tensors stay
// alive until then. Destroying a handle that was not waited for waits.
class PendingCollective {
 public:
  PendingCollective() = default;
  explicit PendingCollective(std::function<void()> wait) : wait_(std::move(wait)) {}
  PendingCollective(PendingCollective&& other) noexcept : wait_(std::exchange(other.wait_, nullptr)) {}
  PendingCollective& operator=(PendingCollective&& other) noexcept {
    if (this != &other) {
      finish_quietly();
      wait_ = std::exchange(other.wait_, nullptr);
    }
    return *this;
  }
  ~PendingCollective() { finish_quietly(); }
  void wait() {
    if (auto w = std::exchange(wait_, nullptr)) w();
  }

 private:
  void finish_quietly() noexcept {
    try {
      wait();
    } catch (...) {  // a destructor must not throw; the backend has recorded the failure
    }
  }
  std::function<void()> wait_;
};

class Collectives {
 public:
  Collectives(int rank, int world_size, std::chrono::milliseconds default_timeout);
  virtual ~Collectives();
  Collectives(const Collectives&) = delete;
  Collectives& operator=(const Collectives&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  std::chrono::milliseconds default_timeout() const { return default_timeout_; }
  // The first failure's message once a collective has failed (the group is then unusable); empty before.
  const std::string& failure() const { return failure_; }

  // Reduces `tensor` across ranks, in place: every rank ends with the same result.
  void all_reduce(const at::Tensor& tensor, ReduceOp op = ReduceOp::sum, Timeout timeout = {});
  // Copies `root`'s `tensor` into every other rank's `tensor`.
  void broadcast(const at::Tensor& tensor, int root, Timeout timeout = {});
  // Rank r's `input` lands at elements [r·n, (r+1)·n) of every rank's `output_flat` (n = input.numel()).
  void all_gather(const at::Tensor& output_flat, const at::Tensor& input, Timeout timeout = {});
  // Reduces `input_flat` across ranks and keeps this rank's part: output_shard = reduced[r·n, (r+1)·n).
  void reduce_scatter(const at::Tensor& output_shard, const at::Tensor& input_flat, ReduceOp op = ReduceOp::sum,
                      Timeout timeout = {});
  // all_reduce, issued without waiting: the caller overlaps other work with it (DDP's gradient
  // buckets during backward) and calls wait() on the handle before using `tensor`.
  PendingCollective all_reduce_async(const at::Tensor& tensor, ReduceOp op = ReduceOp::sum, Timeout timeout = {});
  // all_gather, issued without waiting (ZeRO-3's prefetch of the next layer).
  PendingCollective all_gather_async(const at::Tensor& output_flat, const at::Tensor& input, Timeout timeout = {});
  // reduce_scatter, issued without waiting (ZeRO-1/2's gradient buckets during backward).
  PendingCollective reduce_scatter_async(const at::Tensor& output_shard, const at::Tensor& input_flat,
                                         ReduceOp op = ReduceOp::sum, Timeout timeout = {});
  // Returns once every rank has entered the barrier.
  void barrier(Timeout timeout = {});
  // True when the backend reduces GPU tensors where they are (NCCL); false when it stages them
  // through host copies (Gloo): the same results, without overlap.
  virtual bool reduces_on_gpu() const { return false; }

  // Memory for all-gathers that may run on the GPU's copy engines instead of its SMs, so that an
  // all-gather overlapping a GEMM takes no SMs from it (ZeRO-3's layer gathers; job key
  // zero3_gather_engine). An all_gather whose input and output both lie in such memory takes that
  // path. NCCL (2.28 or later, one node, GPUs with peer access): symmetric memory registered with a
  // second communicator whose CTA policy is zero. Elsewhere it is ordinary memory, so callers need no
  // second code path. Every rank must ask for the same sizes in the same order (registering is
  // collective); the memory lives as long as this object, and no tensor of it may outlive it.
  virtual at::Tensor gather_memory(int64_t numel, const at::TensorOptions& options);
  // Whether all-gathers within gather_memory run on copy engines here; a reason when they do not.
  virtual bool gathers_on_copy_engines(std::string* why_not) const;
  // Sets the copy engines up now if this backend and machine can use them, the ranks agreeing (a
  // collective: every rank must call it), and says whether they will be used. zero3_gather_engine
  // auto asks first, so that where they cannot be it is sm exactly, with no gather slots.
  virtual bool agree_on_copy_engines() { return false; }

 protected:
  // Backends implement these: issue the collective and return when it is done. They must return or
  // throw within about `call.timeout` (the caller turns any exception into the error above), and
  // may assume their arguments were checked: contiguous, defined, sizes and dtypes consistent.
  virtual void run_all_reduce(const at::Tensor& tensor, ReduceOp op, const CollectiveCall& call) = 0;
  virtual void run_broadcast(const at::Tensor& tensor, int root, const CollectiveCall& call) = 0;
  virtual void run_all_gather(const at::Tensor& output_flat, const at::Tensor& input, const CollectiveCall& call) = 0;
  virtual void run_reduce_scatter(const at::Tensor& output_shard, const at::Tensor& input_flat, ReduceOp op,
                                  const CollectiveCall& call) = 0;
  virtual void run_barrier(const CollectiveCall& call) = 0;
  // Backends that can leave a collective running return a handle; by default it is run to the end.
  virtual PendingCollective run_all_reduce_async(const at::Tensor& tensor, ReduceOp op, const CollectiveCall& call) {
    run_all_reduce(tensor, op, call);
    return {};
  }
  virtual PendingCollective run_all_gather_async(const at::Tensor& output_flat, const at::Tensor& input,
                                                 const CollectiveCall& call) {
    run_all_gather(output_flat, input, call);
    return {};
  }
  virtual PendingCollective run_reduce_scatter_async(const at::Tensor& output_shard, const at::Tensor& input_flat,
                                                     ReduceOp op, const CollectiveCall& call) {
    run_reduce_scatter(output_shard, input_flat, op, call);
    return {};
  }
  // Names the backend in a failure's cause: "gloo".
  virtual const char* backend_name() const = 0;

 private:
  CollectiveCall describe(const char* op, const at::Tensor* largest, Timeout timeout) const;
  CollectiveCall checked_all_gather(const at::Tensor& output_flat, const at::Tensor& input, Timeout timeout) const;
  CollectiveCall checked_reduce_scatter(const at::Tensor& output_shard, const at::Tensor& input_flat, Timeout timeout) const;
  void execute(const CollectiveCall& call, const std::function<void()>& run);

  int rank_;
  int world_size_;
  std::chrono::milliseconds default_timeout_;
  std::string failure_;
};

// "30 s", "1.5 s", "250 ms": how errors print a timeout.
std::string format_duration(std::chrono::milliseconds d);

// An exception's message as one line, without the C++ backtrace c10 errors append: the cause part of
// a pdsd::Error raised from a backend failure.
std::string exception_cause(const std::exception& e);

}  // namespace pdsd::dist
