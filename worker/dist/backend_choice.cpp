#include "worker/dist/backend_choice.h"

#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <unistd.h>

#include <cstdlib>
#include <map>

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

// Which GPU this rank would use, as every rank can compare it: "host|CUDA_VISIBLE_DEVICES|index".
std::string gpu_identity(const WorkerEnv& env) {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  return str(host, "|", visible != nullptr ? visible : "*", "|", env.local_rank % std::max(visible_gpus(), 1));
}

// The ranks that would share a GPU with another rank ("ranks 0 and 2 on gpu 0 of host h"), or "".
std::string shared_gpus(c10d::Store& store, const WorkerEnv& env, std::chrono::milliseconds timeout) {
  const std::string prefix = str("pdsd/gpu/attempt_", env.restart_count, "/");
  const std::string mine = gpu_identity(env);
  store.set(prefix + std::to_string(env.rank), std::vector<uint8_t>(mine.begin(), mine.end()));
  std::vector<std::string> keys;
  for (int r = 0; r < env.world_size; ++r) keys.push_back(prefix + std::to_string(r));
  store.wait(keys, timeout);
  std::map<std::string, int> first_user;
  for (int r = 0; r < env.world_size; ++r) {
    std::vector<uint8_t> v = store.get(keys[static_cast<size_t>(r)]);
    const std::string id(v.begin(), v.end());
    auto [it, fresh] = first_user.emplace(id, r);
    if (!fresh) {
      const std::string host = id.substr(0, id.find('|')), device = id.substr(id.rfind('|') + 1);
      return str("ranks ", it->second, " and ", r, " would share GPU ", device, " of ", host);
    }
  }
  return "";
}

}  // namespace

std::unique_ptr<Collectives> make_job_collectives(const JobConfig& job, const WorkerEnv& env) {
  if (env.world_size <= 1) return nullptr;
  const std::chrono::milliseconds timeout = std::chrono::seconds(job.ddp_timeout);
  std::string backend = choose_backend(job, env);
  auto store = connect_rendezvous_store(env, timeout);
  if (backend == "nccl") {
    if (std::string shared = shared_gpus(*store, env, timeout); !shared.empty()) {
      if (job.ddp_backend == "nccl") {
        throw InputError(str("ddp_backend nccl: ", shared, " (NCCL needs one GPU per rank; give each agent its own "
                             "CUDA_VISIBLE_DEVICES, or use ddp_backend: gloo)"));
      }
      if (env.rank == 0) log::warn("ddp_backend auto: ", shared, "; using gloo (give each agent its own CUDA_VISIBLE_DEVICES for nccl)");
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
