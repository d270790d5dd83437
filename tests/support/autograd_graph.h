// What autograd recorded: the nodes reachable from a tensor's grad_fn, counted by name, for tests
// that check which layers are in a backward (checkpointed, differentiated) and which are not.
#pragma once

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function.h>

#include <map>
#include <set>
#include <string>
#include <vector>

namespace pdsd::testing {

// Every node reachable from `root`'s grad_fn once, counted by name.
inline std::map<std::string, int> graph_nodes(const at::Tensor& root) {
  std::map<std::string, int> names;
  std::vector<torch::autograd::Node*> todo{root.grad_fn().get()};
  std::set<torch::autograd::Node*> seen;
  while (!todo.empty()) {
    torch::autograd::Node* node = todo.back();
    todo.pop_back();
    if (node == nullptr || !seen.insert(node).second) continue;
    ++names[node->name()];
    for (const auto& edge : node->next_edges()) todo.push_back(edge.function.get());
  }
  return names;
}

// How many of those nodes have `part` in their name.
inline int count_nodes(const std::map<std::string, int>& names, const std::string& part) {
  int n = 0;
  for (const auto& [name, count] : names) n += name.find(part) != std::string::npos ? count : 0;
  return n;
}

}  // namespace pdsd::testing
