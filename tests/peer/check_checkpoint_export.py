#!/usr/bin/env python3
"""Loads what `pdsd-worker export` made of checkpoints with the real libraries.

Usage: check_checkpoint_export.py LORA_MERGED LORA_ADAPTER LORA_RUN BASE FULL_MERGED FULL_RUN
- LORA_MERGED: HF dir exported from a LoRA checkpoint, LoRA merged, in several shards
- LORA_ADAPTER: PEFT adapter dir exported from the same checkpoint
- LORA_RUN: the training run's output dir (its own adapter_model.safetensors, written at the end)
- FULL_MERGED / FULL_RUN: the same for a full fine-tuning checkpoint and run (an HF dir)
transformers must load the sharded exports (model.safetensors.index.json) and give the logits of the
training run's own model; PEFT must load the exported adapter, whose tensors equal the run's.
"""
import json
import os
import sys

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM


def check_shards(d, max_bytes):
    index = json.load(open(f"{d}/model.safetensors.index.json"))
    files = sorted(set(index["weight_map"].values()))
    assert len(files) >= 2, f"{d}: {len(files)} shard(s); export_size should have forced several"
    for f in files:
        tensors = load_file(f"{d}/{f}")
        assert set(tensors) == {k for k, v in index["weight_map"].items() if v == f}, f"{d}/{f}: index mismatch"
        size = sum(t.numel() * t.element_size() for t in tensors.values())
        assert size <= max_bytes or len(tensors) == 1, f"{d}/{f}: {size} bytes of tensors over the {max_bytes} limit"
    assert index["metadata"]["total_size"] == sum(
        t.numel() * t.element_size() for f in files for t in load_file(f"{d}/{f}").values())
    assert not os.path.exists(f"{d}/model.safetensors"), f"{d}: a single-file model beside the shards"
    return len(files)


def main():
    lora_merged, lora_adapter, lora_run, base_dir, full_merged, full_run = sys.argv[1:7]
    torch.manual_seed(0)
    ids = torch.randint(0, 200, (2, 16))
    worst = 0.0
    with torch.no_grad():
        n = check_shards(lora_merged, 200_000)
        merged = AutoModelForCausalLM.from_pretrained(lora_merged, dtype=torch.float32).eval()
        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
        trained = PeftModel.from_pretrained(base, lora_run).eval()
        want = trained(input_ids=ids).logits
        err = ((merged(input_ids=ids).logits - want).abs().max() / want.abs().max()).item()
        print(f"LoRA checkpoint -> merged HF dir in {n} shards: transformers' logits within {err:.1e} of PEFT on the run's adapter")
        worst = max(worst, err)

        ours, theirs = load_file(f"{lora_adapter}/adapter_model.safetensors"), load_file(f"{lora_run}/adapter_model.safetensors")
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), "adapter tensors differ"
        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
        exported = PeftModel.from_pretrained(base, lora_adapter).eval()
        err = ((exported(input_ids=ids).logits - want).abs().max() / want.abs().max()).item()
        print(f"LoRA checkpoint -> PEFT adapter: tensors equal to the run's adapter; PEFT's logits within {err:.1e}")
        worst = max(worst, err)

        n = check_shards(full_merged, 200_000)
        merged = AutoModelForCausalLM.from_pretrained(full_merged, dtype=torch.float32).eval()
        final = AutoModelForCausalLM.from_pretrained(full_run, dtype=torch.float32).eval()
        want = final(input_ids=ids).logits
        err = ((merged(input_ids=ids).logits - want).abs().max() / want.abs().max()).item()
        print(f"full checkpoint -> HF dir in {n} shards: transformers' logits within {err:.1e} of the run's final model")
        worst = max(worst, err)
    if worst > 1e-5:
        print("MISMATCH")
        sys.exit(1)


if __name__ == "__main__":
    main()
