#include "worker/model/lora.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <set>

#include "common/did_you_mean.h"
#include "common/error.h"

namespace pdsd {

namespace {
const std::vector<std::string> kLinearKinds = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

std::string module_path(int64_t layer, const std::string& kind) {
  bool attention = kind == "q_proj" || kind == "k_proj" || kind == "v_proj" || kind == "o_proj";
  return "model.layers." + std::to_string(layer) + (attention ? ".self_attn." : ".mlp.") + kind;
}
}  // namespace

std::vector<std::string> lora_target_modules(const ModelConfig& config, const std::vector<std::string>& targets) {
  std::set<std::string> kinds;
  for (const auto& t : targets) {
    if (t == "all") {
      kinds.insert(kLinearKinds.begin(), kLinearKinds.end());
    } else if (std::find(kLinearKinds.begin(), kLinearKinds.end(), t) != kLinearKinds.end()) {
      kinds.insert(t);
    } else {
      auto guess = did_you_mean(t, kLinearKinds);
      throw InputError(str("lora_target: '", t, "' is not a linear module of ", config.model_type,
                           guess ? " (did you mean '" + *guess + "'?)" : ""));
    }
  }
  PDSD_CHECK(!kinds.empty(), "lora_target selects no module");
  std::vector<std::string> modules;
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    for (const auto& kind : kLinearKinds) {
      if (kinds.count(kind)) modules.push_back(module_path(layer, kind));
    }
  }
  return modules;
}

LoraAdapters make_lora_adapters(const ModelConfig& config, const LoraSettings& settings, uint64_t seed) {
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& spec : config.expected_weights()) shapes[spec.name] = spec.shape;
  at::Generator gen = at::detail::createCPUGenerator(seed);
  LoraAdapters adapters;
  for (const auto& module : lora_target_modules(config, settings.targets)) {
    const auto& shape = shapes.at(module + ".weight");  // [out, in]
    LoraAdapter adapter;
    // kaiming_uniform_(a=sqrt(5)) on [r, in]: bound = sqrt(6 / ((1 + a^2) * fan_in)) = 1 / sqrt(fan_in).
    double bound = 1.0 / std::sqrt(static_cast<double>(shape[1]));
    adapter.a = at::empty({settings.rank, shape[1]}, at::kFloat).uniform_(-bound, bound, gen).requires_grad_(true);
    adapter.b = at::zeros({shape[0], settings.rank}, at::kFloat).requires_grad_(true);
    adapter.scale = settings.alpha / static_cast<double>(settings.rank);
    adapter.dropout = settings.dropout;
    adapters.emplace(module, std::move(adapter));
  }
  return adapters;
}

void merge_lora(std::map<std::string, at::Tensor>& parameters, const LoraAdapters& adapters) {
  at::NoGradGuard no_grad;
  for (const auto& [module, adapter] : adapters) {
    at::Tensor& w = parameters.at(module + ".weight");
    at::Tensor delta = at::matmul(adapter.b.to(at::kFloat), adapter.a.to(at::kFloat)) * adapter.scale;
    w = (w.to(at::kFloat) + delta).to(w.scalar_type());
  }
}

}  // namespace pdsd
