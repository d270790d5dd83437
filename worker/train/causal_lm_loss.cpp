#include "worker/train/causal_lm_loss.h"

#include <torch/csrc/autograd/custom_function.h>

namespace pdsd {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct FusedLinearCrossEntropy : public torch::autograd::Function<FusedLinearCrossEntropy> {
  // hidden [N, H], weight [V, H], targets [N] (kIgnoreIndex = no loss; `all_valid`: none is).
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight,
                            const at::Tensor& targets, int64_t chunk, bool all_valid) {
    const int64_t n = hidden.size(0);
    const bool want_hidden = hidden.requires_grad(), want_weight = weight.requires_grad();
    // On the GPU in bf16/fp16, GEMMs take half-precision inputs and write fp32 (cuBLAS accumulates in
    // fp32 either way): fp32 logits without a bf16 rounding, and the lm_head gradient summed in fp32
    // without an fp32 GEMM, which would run at a fraction of the tensor-core rate. Its inputs (the
    // softmax gradient, the hidden states) are rounded to bf16, as autocast's lm_head backward in
    // transformers rounds them too.
    const bool half_on_gpu = hidden.is_cuda() && hidden.scalar_type() != at::kFloat;
    at::Tensor w = weight.to(hidden.scalar_type());
    at::Tensor grad_hidden = want_hidden ? at::empty_like(hidden) : at::Tensor();
    at::Tensor grad_weight;  // fp32, [V, H]; allocated by the first chunk's product
    at::Tensor total = at::zeros({}, hidden.options().dtype(at::kFloat));
    for (int64_t start = 0; start < n; start += chunk) {
      const int64_t len = std::min(chunk, n - start);
      at::Tensor h = hidden.narrow(0, start, len);
      at::Tensor t = targets.narrow(0, start, len);
      at::Tensor valid = all_valid ? at::Tensor() : t.ne(kIgnoreIndex);
      at::Tensor safe = (all_valid ? t : at::where(valid, t, at::zeros_like(t))).unsqueeze(1);
      // [len, V]: the only vocabulary-wide tensor
      at::Tensor logits = half_on_gpu ? at::mm(h, w.t(), at::kFloat) : at::matmul(h, w.t()).to(at::kFloat);
      at::Tensor lse = logits.logsumexp(-1, /*keepdim=*/true);
      at::Tensor losses = lse.squeeze(1) - logits.gather(1, safe).squeeze(1);
      total += all_valid ? losses.sum() : (losses * valid).sum();
      if (!want_hidden && !want_weight) continue;
      // d(sum of losses)/d(logits) = softmax - one_hot(target), zero on ignored rows.
      at::Tensor grad = logits.sub_(lse).exp_();
      grad.scatter_add_(1, safe, -at::ones_like(safe, grad.options()));
      if (!all_valid) grad.mul_(valid.unsqueeze(1));
      at::Tensor g = grad.to(w.scalar_type());
      if (want_hidden) {
        at::Tensor rows = grad_hidden.narrow(0, start, len);
        at::mm_out(rows, g, w);
      }
      if (want_weight) {
        at::Tensor part = half_on_gpu ? at::mm(g.t(), h, at::kFloat) : at::matmul(grad.t(), h.to(at::kFloat));
        grad_weight = grad_weight.defined() ? grad_weight.add_(part) : part;
      }
    }
    if (want_weight && !grad_weight.defined()) grad_weight = at::zeros(weight.sizes(), weight.options().dtype(at::kFloat));
    ctx->save_for_backward({grad_hidden, grad_weight});
    return total;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_output) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& scale = grad_output[0];
    at::Tensor grad_hidden = saved[0].defined() ? saved[0] * scale.to(saved[0].scalar_type()) : at::Tensor();
    at::Tensor grad_weight = saved[1].defined() ? saved[1] * scale : at::Tensor();
    return {grad_hidden, grad_weight, at::Tensor(), at::Tensor(), at::Tensor()};
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
  out.sum = FusedLinearCrossEntropy::apply(flat, weight, targets, chunk_tokens, /*all_valid=*/false);
  return out;
}

LossSum causal_lm_loss_at(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& positions,
                          const at::Tensor& targets, int64_t chunk_tokens) {
  at::Tensor rows = hidden.reshape({-1, hidden.size(-1)}).index_select(0, positions);
  LossSum out;
  out.tokens = positions.size(0);
  out.sum = FusedLinearCrossEntropy::apply(rows, weight, targets, chunk_tokens, /*all_valid=*/true);
  return out;
}

}  // namespace pdsd
