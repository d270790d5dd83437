#include "worker/dist/backend_choice.h"

#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include "common/error.h"
#include "common/log.h"
#include "worker/dist/gloo_collectives.h"
#include "worker/dist/nccl_collectives.h"

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

std::unique_ptr<Collectives> make_job_collectives(const JobConfig& job, const WorkerEnv& env) {
  if (env.world_size <= 1) return nullptr;
  const std::string backend = choose_backend(job, env);
  if (backend == "nccl") {
    NcclCollectivesOptions options;
    options.timeout = std::chrono::seconds(job.ddp_timeout);
    options.device = env.local_rank;
    return make_nccl_collectives(env, options);
  }
  if (visible_gpus() > 0 && env.rank == 0) {
    log::warn("ddp_backend gloo with GPUs: gradients travel through host memory (", env.local_world_size,
              " local ranks, ", visible_gpus(), " GPUs)");
  }
  return make_gloo_collectives(env, GlooCollectivesOptions::from_job(job));
}

}  // namespace pdsd::dist
