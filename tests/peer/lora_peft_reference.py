#!/usr/bin/env python3
"""Reference LoRA training with PEFT + torch AdamW for tests/test_lora_matches_peft.cpp.

A small random Qwen2 (transformers), PEFT LoRA r=4 alpha=8 on q_proj,v_proj, torch.optim.AdamW
(lr 1e-3, weight decay 0.01), transformers' cosine schedule with 2 warmup steps, clipping at 1.0,
10 optimizer steps of 2 accumulated micro-batches, loss = sum over the step's predicted tokens / their
count (what transformers' Trainer does with num_items_in_batch). Writes the model dir, the initial and
final adapter weights, the batches, and per-step loss / grad norm / lr into OUT_DIR.

Usage: lora_peft_reference.py OUT_DIR
"""
import sys
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import Qwen2Config, Qwen2ForCausalLM, get_cosine_schedule_with_warmup

STEPS, ACCUM, BATCH, SEQ = 10, 2, 2, 24


def main():
    out = Path(sys.argv[1])
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         rope_theta=1000000.0, tie_word_embeddings=True, attn_implementation="sdpa")
    base = Qwen2ForCausalLM(config).to(torch.float32)
    base.save_pretrained(out / "model", safe_serialization=True)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
                                            bias="none"))
    lora = {n: p for n, p in model.named_parameters() if p.requires_grad}
    tensors = {}

    def module_of(name):  # base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight
        core = name.split("base_model.model.", 1)[1]
        module, kind = core.split(".lora_")
        return module, "a" if kind.startswith("A") else "b"

    for n, p in lora.items():
        module, kind = module_of(n)
        tensors[f"init.{module}.{kind}"] = p.detach().clone()
    opt = torch.optim.AdamW(list(lora.values()), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=2, num_training_steps=STEPS)
    g = torch.Generator().manual_seed(7)
    losses, norms, lrs = [], [], []
    model.train()
    for step in range(STEPS):
        micro = []
        for m in range(ACCUM):
            ids = torch.randint(0, config.vocab_size, (BATCH, SEQ), generator=g)
            labels = ids.clone()
            labels[:, : 4 + step % 3] = -100
            labels[1, SEQ - 3:] = -100  # a padded tail in row 1
            micro.append((ids, labels))
            tensors[f"batch.{step}.{m}.input_ids"] = ids
            tensors[f"batch.{step}.{m}.labels"] = labels
        items = sum(int((lab[:, 1:] != -100).sum()) for _, lab in micro)
        total = 0.0
        for ids, labels in micro:
            logits = model(input_ids=ids).logits[:, :-1].float()
            loss_sum = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1),
                                                         ignore_index=-100, reduction="sum")
            (loss_sum / items).backward()
            total += float(loss_sum)
        norms.append(float(torch.nn.utils.clip_grad_norm_(list(lora.values()), 1.0)))
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
        opt.zero_grad()
        losses.append(total / items)
    for n, p in lora.items():
        module, kind = module_of(n)
        tensors[f"final.{module}.{kind}"] = p.detach().clone()
    tensors["loss"] = torch.tensor(losses, dtype=torch.float64)
    tensors["grad_norm"] = torch.tensor(norms, dtype=torch.float64)
    tensors["lr"] = torch.tensor(lrs, dtype=torch.float64)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / "reference.safetensors"))


if __name__ == "__main__":
    main()
