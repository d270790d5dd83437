// What a scheduler tells a node about its place in the job, read from its environment so that the
// same pdsd-launch line works in an sbatch script and in a Kubernetes Indexed Job:
//   Slurm:      SLURM_NODEID → node rank, SLURM_NNODES → nodes, first host of SLURM_JOB_NODELIST
//               (`scontrol show hostnames`, else parsed) → rendezvous host, SLURM_JOB_ID → rendezvous id;
//   Kubernetes: JOB_COMPLETION_INDEX → node rank (the rest comes as PET_* variables in the pod spec).
// Options given on the command line or as PET_* variables win over these.
#pragma once

#include <optional>
#include <string>

namespace pdsd {

struct ClusterHints {
  std::string source;  // "slurm", "kubernetes" or "" (none)
  std::optional<int> node_rank;
  std::optional<int> nnodes;
  std::optional<std::string> rdzv_host;
  std::optional<std::string> rdzv_id;
};

ClusterHints detect_cluster();

// The first host of a Slurm node list: "gpu[07-09,12],cpu1" → "gpu07". Throws InputError for a
// list it cannot read.
std::string first_host_of_slurm_nodelist(const std::string& nodelist);

}  // namespace pdsd
