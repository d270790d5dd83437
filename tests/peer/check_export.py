#!/usr/bin/env python3
"""Loads pdsd's exports with the real libraries and compares their logits with pdsd's own.

Usage: check_export.py HF_DIR ADAPTER_DIR BASE_DIR OURS.safetensors
- HF_DIR: a Hugging Face model dir with LoRA merged -> transformers' AutoModelForCausalLM
- ADAPTER_DIR: a PEFT adapter -> PeftModel.from_pretrained(base from BASE_DIR)
- OURS: input_ids and pdsd's logits for them
Exits non-zero, saying which, when a load fails or logits differ beyond float32 tolerance.
"""
import sys

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM


def main():
    hf_dir, adapter_dir, base_dir, ours_path = sys.argv[1:5]
    ours = load_file(ours_path)
    ids, want = ours["input_ids"], ours["logits"]
    scale = want.abs().max().item()
    failures = []
    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
        err = (merged(input_ids=ids).logits.float() - want).abs().max().item() / scale
        print(f"transformers on the merged HF dir: max relative logit difference {err:.2e}")
        if err > 1e-5:
            failures.append("merged HF dir")
        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
        peft = PeftModel.from_pretrained(base, adapter_dir).eval()
        err = (peft(input_ids=ids).logits.float() - want).abs().max().item() / scale
        print(f"PEFT adapter on the base model: max relative logit difference {err:.2e}")
        if err > 1e-5:
            failures.append("PEFT adapter")
    if failures:
        print("MISMATCH: " + ", ".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
