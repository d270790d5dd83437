#include "worker/train/causal_lm_loss.h"

#include <torch/csrc/autograd/custom_function.h>

namespace pdsd {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct FusedLinearCrossEntropy : public torch::autograd::Function<FusedLinearCrossEntropy> {
  // hidden [N, H], weight [V, H], targets [N] (kIgnoreIndex = no loss).
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight,
                            const at::Tensor& targets, int64_t chunk) {
    const int64_t n = hidden.size(0);
    const bool want_hidden = hidden.requires_grad(), want_weight = weight.requires_grad();
    at::Tensor w = weight.to(hidden.scalar_type());
    at::Tensor grad_hidden = want_hidden ? at::empty_like(hidden) : at::Tensor();
    at::Tensor grad_weight = want_weight ? at::zeros(weight.sizes(), weight.options().dtype(at::kFloat)) : at::Tensor();
    at::Tensor total = at::zeros({}, hidden.options().dtype(at::kFloat));
    for (int64_t start = 0; start < n; start += chunk) {
      const int64_t len = std::min(chunk, n - start);
      at::Tensor h = hidden.narrow(0, start, len);
      at::Tensor t = targets.narrow(0, start, len);
      at::Tensor valid = t.ne(kIgnoreIndex);
      at::Tensor safe = at::where(valid, t, at::zeros_like(t)).unsqueeze(1);
      at::Tensor logits = at::matmul(h, w.t()).to(at::kFloat);  // [len, V]: the only vocabulary-wide tensor
      at::Tensor lse = logits.logsumexp(-1, /*keepdim=*/true);
      total += ((lse.squeeze(1) - logits.gather(1, safe).squeeze(1)) * valid).sum();
      if (!want_hidden && !want_weight) continue;
      // d(sum of losses)/d(logits) = softmax - one_hot(target), zero on ignored rows.
      at::Tensor grad = logits.sub_(lse).exp_();
      grad.scatter_add_(1, safe, -at::ones_like(safe, grad.options()));
      grad.mul_(valid.unsqueeze(1));
      if (want_hidden) grad_hidden.narrow(0, start, len).copy_(at::matmul(grad.to(w.scalar_type()), w));
      if (want_weight) grad_weight.add_(at::matmul(grad.t(), h.to(at::kFloat)));
    }
    ctx->save_for_backward({grad_hidden, grad_weight});
    return total;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_output) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& scale = grad_output[0];
    at::Tensor grad_hidden = saved[0].defined() ? saved[0] * scale.to(saved[0].scalar_type()) : at::Tensor();
    at::Tensor grad_weight = saved[1].defined() ? saved[1] * scale : at::Tensor();
    return {grad_hidden, grad_weight, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

LossSum causal_lm_loss(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels, int64_t chunk_tokens,
                       bool count_tokens) {
  const int64_t batch = labels.size(0), seq = labels.size(1);
  // Position t predicts label t+1; the last position of each row predicts nothing.
  at::Tensor shifted = at::cat({labels.narrow(1, 1, seq - 1), at::full({batch, 1}, kIgnoreIndex, labels.options())}, 1);
  at::Tensor targets = shifted.reshape({-1});
  at::Tensor flat = hidden.reshape({batch * seq, hidden.size(-1)});
  LossSum out;
  out.tokens = count_tokens ? targets.ne(kIgnoreIndex).sum().item<int64_t>() : -1;
  out.sum = FusedLinearCrossEntropy::apply(flat, weight, targets, chunk_tokens);
  return out;
}

}  // namespace pdsd
