// Argument checks, timeouts and error messages shared by every backend, so that a Gloo and an NCCL
// failure read the same and a backend only has to move bytes.
#include "worker/dist/collectives.h"

#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cctype>
#include <sstream>

#include "common/error.h"

namespace pdsd::dist {

// c10 errors carry a C++ backtrace in what() (useless to a user) and gloo's messages can span lines;
// the error we throw must stay one readable line.
std::string exception_cause(const std::exception& e) {
  std::string text = e.what();
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) text = c10_error->what_without_backtrace();
  std::string out;
  for (char ch : text) {
    if (ch == '\n' || ch == '\r' || ch == '\t') ch = ' ';
    if (ch == ' ' && (out.empty() || out.back() == ' ')) continue;
    out.push_back(ch);
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

namespace {

bool mentions_timeout(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text.find("timed out") != std::string::npos || text.find("timeout") != std::string::npos;
}

}  // namespace

const char* to_string(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return "sum";
    case ReduceOp::max: return "max";
    case ReduceOp::min: return "min";
  }
  return "?";
}

std::string dtype_name(const at::Tensor& tensor) {
  switch (tensor.scalar_type()) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kByte: return "uint8";
    case at::kChar: return "int8";
    case at::kShort: return "int16";
    case at::kInt: return "int32";
    case at::kLong: return "int64";
    case at::kBool: return "bool";
    default: return c10::toString(tensor.scalar_type());
  }
}

std::string format_duration(std::chrono::milliseconds d) {
  auto ms = d.count();
  if (ms % 1000 == 0) return str(ms / 1000, " s");
  if (ms < 1000) return str(ms, " ms");
  std::ostringstream out;
  out.precision(3);
  out << static_cast<double>(ms) / 1000.0 << " s";
  return out.str();
}

std::string CollectiveCall::describe() const {
  if (numel == 0 && dtype.empty()) return op;
  return str(op, " of ", numel, " ", dtype, " elements (", numel * element_size, " bytes)");
}

Collectives::Collectives(int rank, int world_size, std::chrono::milliseconds default_timeout)
    : rank_(rank), world_size_(world_size), default_timeout_(default_timeout) {
  PDSD_CHECK(world_size >= 1 && rank >= 0 && rank < world_size, "rank ", rank, " of world size ", world_size);
  PDSD_CHECK(default_timeout.count() > 0, "collective timeout must be positive, got ", default_timeout.count(), " ms");
}

Collectives::~Collectives() = default;

CollectiveCall Collectives::describe(const char* op, const at::Tensor* largest, Timeout timeout) const {
  CollectiveCall call;
  call.op = op;
  call.timeout = timeout.value_or(default_timeout_);
  if (largest != nullptr) {
    call.numel = largest->numel();
    call.dtype = dtype_name(*largest);
    call.element_size = static_cast<int64_t>(largest->element_size());
  }
  if (call.timeout.count() <= 0) {
    throw Error(str("rank ", rank_, ": ", call.describe(), ": timeout must be positive, got ",
                    call.timeout.count(), " ms"));
  }
  return call;
}

void Collectives::execute(const CollectiveCall& call, const std::function<void()>& run) {
  if (!failure_.empty()) {
    throw Error(str("rank ", rank_, ": ", call.describe(), " not started: an earlier collective failed, so this "
                    "rank is out of step with its peers (", failure_, ")"));
  }
  auto start = std::chrono::steady_clock::now();
  try {
    run();
  } catch (const std::exception& e) {
    auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    std::string cause = exception_cause(e);
    // Either the backend said it timed out or the time is simply up: both mean "did not complete".
    if (elapsed >= call.timeout || mentions_timeout(cause)) {
      failure_ = str("rank ", rank_, ": ", call.describe(), " did not complete within ", format_duration(call.timeout),
                     " (a peer may have died or issued another collective); ", backend_name(), ": ", cause);
    } else {
      failure_ = str("rank ", rank_, ": ", call.describe(), " failed after ", format_duration(elapsed),
                     " (a peer may have died): ", backend_name(), ": ", cause);
    }
    throw Error(failure_);  // logged once, where it is caught (main())
  }
}

namespace {
void check_dense(int rank, const char* op, const char* name, const at::Tensor& t) {
  if (!t.defined()) throw Error(str("rank ", rank, ": ", op, ": ", name, " is an undefined tensor"));
  // The backends send the tensor's storage as one buffer; a strided view would send the wrong bytes.
  if (!t.is_contiguous()) throw Error(str("rank ", rank, ": ", op, ": ", name, " is not contiguous"));
}
void check_same_dtype(int rank, const char* op, const at::Tensor& out, const at::Tensor& in) {
  if (out.scalar_type() != in.scalar_type()) {
    throw Error(str("rank ", rank, ": ", op, ": output is ", dtype_name(out), " but input is ", dtype_name(in)));
  }
}
}  // namespace

void Collectives::all_reduce(const at::Tensor& tensor, ReduceOp op, Timeout timeout) {
  check_dense(rank_, "all_reduce", "tensor", tensor);
  auto call = describe("all_reduce", &tensor, timeout);
  execute(call, [&] { run_all_reduce(tensor, op, call); });
}

PendingCollective Collectives::all_reduce_async(const at::Tensor& tensor, ReduceOp op, Timeout timeout) {
  check_dense(rank_, "all_reduce", "tensor", tensor);
  auto call = describe("all_reduce", &tensor, timeout);
  PendingCollective pending;
  execute(call, [&] { pending = run_all_reduce_async(tensor, op, call); });
  return pending;
}

void Collectives::broadcast(const at::Tensor& tensor, int root, Timeout timeout) {
  check_dense(rank_, "broadcast", "tensor", tensor);
  if (root < 0 || root >= world_size_) {
    throw Error(str("rank ", rank_, ": broadcast: root ", root, " is not a rank of this group (0..", world_size_ - 1, ")"));
  }
  auto call = describe("broadcast", &tensor, timeout);
  execute(call, [&] { run_broadcast(tensor, root, call); });
}

CollectiveCall Collectives::checked_all_gather(const at::Tensor& output_flat, const at::Tensor& input, Timeout timeout) const {
  check_dense(rank_, "all_gather", "output", output_flat);
  check_dense(rank_, "all_gather", "input", input);
  check_same_dtype(rank_, "all_gather", output_flat, input);
  if (output_flat.numel() != input.numel() * world_size_) {
    throw Error(str("rank ", rank_, ": all_gather: output has ", output_flat.numel(), " elements but ", world_size_,
                    " ranks x ", input.numel(), " input elements make ", input.numel() * world_size_));
  }
  return describe("all_gather", &output_flat, timeout);
}

void Collectives::all_gather(const at::Tensor& output_flat, const at::Tensor& input, Timeout timeout) {
  auto call = checked_all_gather(output_flat, input, timeout);
  execute(call, [&] { run_all_gather(output_flat, input, call); });
}

PendingCollective Collectives::all_gather_async(const at::Tensor& output_flat, const at::Tensor& input, Timeout timeout) {
  auto call = checked_all_gather(output_flat, input, timeout);
  PendingCollective pending;
  execute(call, [&] { pending = run_all_gather_async(output_flat, input, call); });
  return pending;
}

CollectiveCall Collectives::checked_reduce_scatter(const at::Tensor& output_shard, const at::Tensor& input_flat,
                                                  Timeout timeout) const {
  check_dense(rank_, "reduce_scatter", "output", output_shard);
  check_dense(rank_, "reduce_scatter", "input", input_flat);
  check_same_dtype(rank_, "reduce_scatter", output_shard, input_flat);
  if (input_flat.numel() != output_shard.numel() * world_size_) {
    throw Error(str("rank ", rank_, ": reduce_scatter: input has ", input_flat.numel(), " elements but ", world_size_,
                    " ranks x ", output_shard.numel(), " output elements make ", output_shard.numel() * world_size_));
  }
  return describe("reduce_scatter", &input_flat, timeout);
}

void Collectives::reduce_scatter(const at::Tensor& output_shard, const at::Tensor& input_flat, ReduceOp op,
                                 Timeout timeout) {
  auto call = checked_reduce_scatter(output_shard, input_flat, timeout);
  execute(call, [&] { run_reduce_scatter(output_shard, input_flat, op, call); });
}

PendingCollective Collectives::reduce_scatter_async(const at::Tensor& output_shard, const at::Tensor& input_flat,
                                                    ReduceOp op, Timeout timeout) {
  auto call = checked_reduce_scatter(output_shard, input_flat, timeout);
  PendingCollective pending;
  execute(call, [&] { pending = run_reduce_scatter_async(output_shard, input_flat, op, call); });
  return pending;
}

at::Tensor Collectives::gather_memory(int64_t numel, const at::TensorOptions& options) {
  return at::empty({numel}, options);
}

bool Collectives::gathers_on_copy_engines(std::string* why_not) const {
  if (why_not != nullptr) *why_not = str("the ", backend_name(), " backend has no copy-engine all-gathers");
  return false;
}

void Collectives::barrier(Timeout timeout) {
  auto call = describe("barrier", nullptr, timeout);
  execute(call, [&] { run_barrier(call); });
}

}  // namespace pdsd::dist
