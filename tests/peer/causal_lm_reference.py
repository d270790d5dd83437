#!/usr/bin/env python3
"""Reference outputs from transformers for tests/test_causal_lm_matches_transformers.cpp.

Writes, under OUT_DIR, one Hugging Face model dir per case (random weights, fp32) and a
reference.safetensors with what transformers computes on fixed inputs: logits, the loss (mean over
predicted tokens), every parameter's gradient of that loss, and per-sample losses for the packing test.

Usage: causal_lm_reference.py OUT_DIR
"""
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

CASES = {
    # Qwen2.5-shaped in miniature: q/k/v bias, GQA 4:2, tied embeddings, large rope_theta.
    "qwen2": lambda: Qwen2ForCausalLM(Qwen2Config(
        vocab_size=320, hidden_size=64, intermediate_size=160, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, rope_theta=1000000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=True, attn_implementation="sdpa")),
    # Llama 3.1-shaped: no bias, GQA 8:2, untied, llama3 rope rescaling.
    "llama": lambda: LlamaForCausalLM(LlamaConfig(
        vocab_size=300, hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=8,
        num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5, tie_word_embeddings=False,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
        attn_implementation="sdpa")),
}


def main():
    out = Path(sys.argv[1])
    lengths = [17, 11]  # two samples of different lengths: a right-padded batch of 2
    for name, make in CASES.items():
        torch.manual_seed(0)
        model = make().to(torch.float32)
        # Random norms so their gradients and effects are not trivially uniform.
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n.endswith("layernorm.weight") or n == "model.norm.weight":
                    p.uniform_(0.5, 1.5)
                if n.endswith(".bias"):
                    p.normal_(0, 0.1)
        model_dir = out / name
        model.save_pretrained(model_dir, safe_serialization=True)
        vocab = model.config.vocab_size
        g = torch.Generator().manual_seed(1)
        seq = max(lengths)
        ids = torch.randint(0, vocab, (len(lengths), seq), generator=g)
        labels = ids.clone()
        labels[:, :5] = -100  # a masked prompt
        for row, n in enumerate(lengths):
            ids[row, n:] = 0
            labels[row, n:] = -100
        positions = torch.arange(seq).unsqueeze(0).expand(len(lengths), seq)
        model.train()
        model.zero_grad()
        result = model(input_ids=ids, position_ids=positions, labels=labels)
        result.loss.backward()
        tensors = {"input_ids": ids, "labels": labels, "logits": result.logits.detach().float().contiguous(),
                   "loss": result.loss.detach().reshape(1)}
        for n, p in model.named_parameters():
            tensors["grad." + n] = p.grad.detach().contiguous()
        # Per-sample loss sums (each sample alone, unpadded): packing must reproduce their total.
        sums = []
        with torch.no_grad():
            for row, n in enumerate(lengths):
                logits = model(input_ids=ids[row:row + 1, :n]).logits[0, :-1].float()
                target = labels[row, 1:n]
                sums.append(torch.nn.functional.cross_entropy(logits, target, ignore_index=-100, reduction="sum"))
        tensors["per_sample_loss_sum"] = torch.stack(sums).contiguous()
        save_file(tensors, str(model_dir / "reference.safetensors"))
    (out / "lengths.json").write_text(json.dumps(lengths))


if __name__ == "__main__":
    main()
