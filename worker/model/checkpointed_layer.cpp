#include "worker/model/checkpointed_layer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include "worker/model/causal_lm.h"

namespace pdsd {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct CheckpointedLayer : public torch::autograd::Function<CheckpointedLayer> {
  // The attention layout travels beside the tensor inputs: its tensors may be undefined, which
  // autograd's inputs may not be, and they never need a gradient.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                            int64_t layout_address, int64_t layer, const CausalLM* model, LayerWeights* weights) {
    const AttentionLayout& layout = *reinterpret_cast<const AttentionLayout*>(layout_address);
    if (layout.mask.defined()) ctx->saved_data["mask"] = layout.mask;
    if (layout.cu_seqlens.defined()) ctx->saved_data["cu_seqlens"] = layout.cu_seqlens;
    ctx->saved_data["max_seqlen"] = layout.max_seqlen;
    ctx->saved_data["layer"] = layer;
    ctx->saved_data["model"] = reinterpret_cast<int64_t>(model);
    ctx->saved_data["weights"] = reinterpret_cast<int64_t>(weights);
    // The generator of the device the layer runs on (CPU or CUDA): dropout draws from it.
    ctx->saved_data["rng"] = at::globalContext().defaultGenerator(x.device()).get_state();
    ctx->save_for_backward({x, cos, sin});
    if (weights != nullptr) weights->acquire(layer, /*for_backward=*/false);
    at::Tensor out = model->layer_forward(layer, x, cos, sin, layout);  // grad mode is off inside forward
    if (weights != nullptr) weights->release(layer, /*after_backward=*/false);
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_output) {
    auto saved = ctx->get_saved_variables();
    const auto* model = reinterpret_cast<const CausalLM*>(ctx->saved_data["model"].toInt());
    const int64_t layer = ctx->saved_data["layer"].toInt();
    auto* weights = reinterpret_cast<LayerWeights*>(ctx->saved_data["weights"].toInt());
    if (weights != nullptr) weights->acquire(layer, /*for_backward=*/true);
    at::Generator gen = at::globalContext().defaultGenerator(saved[0].device());
    at::Tensor rng_now = gen.get_state();
    gen.set_state(ctx->saved_data["rng"].toTensor());  // the same dropout masks as the first pass
    AttentionLayout layout;
    if (ctx->saved_data.count("mask")) layout.mask = ctx->saved_data["mask"].toTensor();
    if (ctx->saved_data.count("cu_seqlens")) layout.cu_seqlens = ctx->saved_data["cu_seqlens"].toTensor();
    layout.max_seqlen = ctx->saved_data["max_seqlen"].toInt();
    at::Tensor x = saved[0].detach().requires_grad_(saved[0].requires_grad());
    at::Tensor out;
    {
      at::AutoGradMode enable(true);
      out = model->layer_forward(layer, x, saved[1], saved[2], layout);
    }
    gen.set_state(rng_now);
    // Parameters are leaves: their gradients accumulate as this inner backward runs.
    torch::autograd::backward({out}, {grad_output[0]});
    if (weights != nullptr) weights->release(layer, /*after_backward=*/true);
    return {x.requires_grad() ? x.grad() : at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor checkpointed_layer_forward(const CausalLM& model, int64_t layer, const at::Tensor& x, const at::Tensor& cos,
                                      const at::Tensor& sin, const AttentionLayout& attention, LayerWeights* weights) {
  return CheckpointedLayer::apply(x, cos, sin, reinterpret_cast<int64_t>(&attention), layer, &model, weights);
}

}  // namespace pdsd
