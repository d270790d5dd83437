// Where a node learns its place in the job under a scheduler: Slurm's node list syntax (first host
// = the rendezvous host), SLURM_* and Kubernetes' JOB_COMPLETION_INDEX filling the options the user
// did not give, and options given explicitly winning over them.
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "common/error.h"
#include "launcher/cluster_env.h"
#include "launcher/launch_options.h"

namespace {

TEST(SlurmNodelist, FirstHostOfEachSyntax) {
  EXPECT_EQ(pdsd::first_host_of_slurm_nodelist("gpu01"), "gpu01");
  EXPECT_EQ(pdsd::first_host_of_slurm_nodelist("gpu[07-09,12],cpu1"), "gpu07");
  EXPECT_EQ(pdsd::first_host_of_slurm_nodelist("a1,b2"), "a1");
  EXPECT_EQ(pdsd::first_host_of_slurm_nodelist("rack[3,5]-node[001-004]"), "rack3-node001");
  EXPECT_THROW(pdsd::first_host_of_slurm_nodelist("gpu[]"), pdsd::InputError);
}

// Runs parse_launch_options with `env` set, then puts the environment back as it was.
pdsd::LaunchOptions parse_with(const std::vector<std::pair<const char*, const char*>>& env, std::vector<const char*> args) {
  std::vector<std::pair<const char*, std::optional<std::string>>> saved;
  for (auto [k, v] : env) {
    const char* old = std::getenv(k);
    saved.emplace_back(k, old ? std::optional<std::string>(old) : std::nullopt);
    ::setenv(k, v, 1);
  }
  auto restore = [&] {
    for (auto& [k, v] : saved) v ? ::setenv(k, v->c_str(), 1) : ::unsetenv(k);
  };
  args.insert(args.begin(), "pdsd-launch");
  args.push_back("--");
  args.push_back("true");
  pdsd::LaunchOptions out;
  try {
    pdsd::parse_launch_options(static_cast<int>(args.size()), const_cast<char**>(args.data()), out);
  } catch (...) {
    restore();
    throw;
  }
  restore();
  return out;
}

TEST(ClusterEnv, SlurmFillsNodeRankNodesRendezvousAndId) {
  auto o = parse_with({{"SLURM_JOB_ID", "4242"}, {"SLURM_NODEID", "1"}, {"SLURM_NNODES", "2"}, {"SLURM_JOB_NODELIST", "gpu[07-08]"},
                       {"PATH", "/nonexistent"}},  // no scontrol: the list is parsed
                      {"--nproc", "8"});
  EXPECT_EQ(o.cluster, "slurm");
  EXPECT_EQ(o.node_rank, 1);
  EXPECT_EQ(o.max_nodes, 2);
  EXPECT_EQ(o.rdzv_endpoint, "gpu07");
  EXPECT_EQ(o.master_addr, "gpu07");
  EXPECT_EQ(o.rdzv_id, "4242");
}

TEST(ClusterEnv, GivenOptionsWinOverSlurm) {
  auto o = parse_with({{"SLURM_JOB_ID", "4242"}, {"SLURM_NODEID", "1"}, {"SLURM_NNODES", "2"}, {"SLURM_JOB_NODELIST", "gpu[07-08]"},
                       {"PATH", "/nonexistent"}},
                      {"--nnodes", "4", "--node-rank", "3", "--rdzv-endpoint", "head:1234", "--rdzv-id", "mine"});
  EXPECT_EQ(o.node_rank, 3);
  EXPECT_EQ(o.max_nodes, 4);
  EXPECT_EQ(o.rdzv_endpoint, "head:1234");
  EXPECT_EQ(o.rdzv_id, "mine");
}

TEST(ClusterEnv, KubernetesIndexIsTheNodeRank) {
  auto o = parse_with({{"JOB_COMPLETION_INDEX", "2"}, {"PET_NNODES", "3"}, {"PET_RDZV_ENDPOINT", "sft-0.sft:29400"}}, {});
  EXPECT_EQ(o.cluster, "kubernetes");
  EXPECT_EQ(o.node_rank, 2);
  EXPECT_EQ(o.max_nodes, 3);
  EXPECT_EQ(o.rdzv_endpoint, "sft-0.sft:29400");
}

TEST(ClusterEnv, BadRendezvousSettingsAreInputErrors) {
  EXPECT_THROW(parse_with({}, {"--rdzv-conf", "join_timeout=abc"}), pdsd::InputError);
  EXPECT_THROW(parse_with({}, {"--rdzv-conf", "no_such_key=1"}), pdsd::InputError);
  EXPECT_THROW(parse_with({}, {"--nnodes", "2", "--node-rank", "2"}), pdsd::InputError);
  EXPECT_THROW(parse_with({}, {"--nnodes", "2", "--standalone"}), pdsd::InputError);
  auto o = parse_with({}, {"--nnodes", "1:4", "--rdzv-conf", "join_timeout=60,last_call_timeout=5"});
  EXPECT_EQ(o.min_nodes, 1);
  EXPECT_EQ(o.max_nodes, 4);
  EXPECT_DOUBLE_EQ(o.join_timeout_s, 60);
  EXPECT_DOUBLE_EQ(o.last_call_s, 5);
}

}  // namespace
