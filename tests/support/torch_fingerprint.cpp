#include "tests/support/torch_fingerprint.h"

#include "worker/model_config.h"
#include "worker/model_weights.h"

namespace pdsd::testing {
double torch_weights_fingerprint(const std::string& model_dir) {
  auto weights = load_model_weights(model_dir, read_model_config(model_dir));
  double total = 0;
  for (const auto& [name, t] : weights.tensors) total += t.to(at::kDouble).square().sum().item<double>();
  return total;
}
}  // namespace pdsd::testing
