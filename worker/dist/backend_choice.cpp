#include "worker/dist/backend_choice.h"

#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>

#ifdef PDSD_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#include "common/error.h"
#include "common/log.h"
#include "worker/dist/gloo_collectives.h"
#include "worker/dist/nccl_collectives.h"
#include "worker/dist/rendezvous_store.h"

namespace pdsd::dist {

int visible_gpus() { return at::hasCUDA() ? static_cast<int>(at::detail::getCUDAHooks().deviceCount()) : 0; }

std::string choose_backend(const JobConfig& job, const WorkerEnv& env) {
  const int gpus = visible_gpus();
  const bool nccl_fits = nccl_built() && gpus >= env.local_world_size && gpus > 0;
  if (job.ddp_backend == "gloo") return "gloo";
  if (job.ddp_backend == "nccl") {
    if (!nccl_built()) throw InputError("ddp_backend nccl: this build has no CUDA/NCCL (configure with -DPDSD_CUDA=ON)");
    if (!nccl_fits) {
      throw InputError(str("ddp_backend nccl: ", env.local_world_size, " local ranks but ", gpus,
                           " visible GPU(s); NCCL needs one GPU per rank (use --nproc ", std::max(gpus, 1),
                           " or ddp_backend: gloo)"));
    }
    return "nccl";
  }
  return nccl_fits ? "nccl" : "gloo";
}

namespace {

std::string first_line_of(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// Which physical GPU this rank would use, comparable across ranks: the machine's boot id (hostnames
// repeat across containers) and the GPU's PCI bus id (CUDA_VISIBLE_DEVICES may renumber devices).
std::string gpu_identity(const WorkerEnv& env) {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const std::string machine = str(host, "/", first_line_of("/proc/sys/kernel/random/boot_id"));
  const int device = env.local_rank % std::max(visible_gpus(), 1);
#ifdef PDSD_HAVE_CUDA
  char bus[64] = {};
  if (cudaDeviceGetPCIBusId(bus, sizeof bus, device) == cudaSuccess) return str(machine, "|", bus);
#endif
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  return str(machine, "|", visible != nullptr ? visible : "*", ":", device);
}

// Every rank publishes whether it can run NCCL and on which GPU, and reads everyone's: the job uses
// NCCL only if every rank can and no two share a GPU. Returns "" for NCCL, else why not.
std::string why_not_nccl(c10d::Store& store, const WorkerEnv& env, bool capable, std::chrono::milliseconds timeout) {
  const std::string prefix = str("pdsd/gpu/attempt_", env.restart_count, "/");
  const std::string mine = str(capable ? "1" : "0", "|", capable ? gpu_identity(env) : "");
  store.set(prefix + std::to_string(env.rank), std::vector<uint8_t>(mine.begin(), mine.end()));
  std::vector<std::string> keys;
  for (int r = 0; r < env.world_size; ++r) keys.push_back(prefix + std::to_string(r));
  try {
    store.wait(keys, timeout);
  } catch (const std::exception& e) {
    throw Error(str("rank ", env.rank, ": not every rank said within ", format_duration(timeout),
                    " which GPU it uses (a rank failed to start?): ", exception_cause(e)));
  }
  std::map<std::string, int> first_user;
  for (int r = 0; r < env.world_size; ++r) {
    std::vector<uint8_t> v = store.get(keys[static_cast<size_t>(r)]);
    const std::string text(v.begin(), v.end());
    if (text.rfind("1|", 0) != 0) return str("rank ", r, " has no GPU of its own");
    auto [it, fresh] = first_user.emplace(text.substr(2), r);
    if (!fresh) return str("ranks ", it->second, " and ", r, " would share GPU ", text.substr(text.rfind('|') + 1));
  }
  return "";
}

}  // namespace

std::unique_ptr<Collectives> make_job_collectives(const JobConfig& job, const WorkerEnv& env) {
  if (env.world_size <= 1) return nullptr;
  const std::chrono::milliseconds timeout = std::chrono::seconds(job.ddp_timeout);
  std::string backend = choose_backend(job, env);  // this node's view; throws for an impossible nccl
  auto store = connect_rendezvous_store(env, timeout);
  if (job.ddp_backend != "gloo") {  // every rank must agree: decide on everyone's view
    if (std::string why = why_not_nccl(*store, env, backend == "nccl", timeout); !why.empty()) {
      if (job.ddp_backend == "nccl") {
        throw InputError(str("ddp_backend nccl: ", why, " (NCCL needs one GPU per rank; give each agent its own "
                             "CUDA_VISIBLE_DEVICES, or use ddp_backend: gloo)"));
      }
      if (env.rank == 0 && visible_gpus() > 0) log::warn("ddp_backend auto: ", why, "; using gloo");
      backend = "gloo";
    }
  }
  if (backend == "nccl") {
    NcclCollectivesOptions options;
    options.timeout = timeout;
    options.device = env.local_rank;
    options.store = store;
    return make_nccl_collectives(env, options);
  }
  if (visible_gpus() > 0 && env.rank == 0) {
    log::warn("ddp_backend gloo with GPUs: gradients travel through host memory (", env.local_world_size,
              " local ranks, ", visible_gpus(), " GPUs)");
  }
  GlooCollectivesOptions options = GlooCollectivesOptions::from_job(job);
  options.store = store;
  return make_gloo_collectives(env, options);
}

}  // namespace pdsd::dist
