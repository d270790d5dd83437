#!/usr/bin/env python3
"""The peer: Hugging Face Trainer on the same model, data and settings. Prints one JSON line:
tokens/s over non-padding tokens (steps after the first 3) and peak GPU memory (max reserved).
Usage: hf_trainer.py BENCH_DIR full|lora BATCH ACCUM STEPS"""
import json
import sys
import time

import torch
from transformers import (AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainerCallback,
                          TrainingArguments)

bench, method, bs, ga, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
model_dir = f"{bench}/qwen2.5-0.5b-shape"
tok = AutoTokenizer.from_pretrained(model_dir)
records = json.load(open(f"{bench}/data/synthetic_sft.json"))
features = []
for r in records:
    msgs = [{"role": "system", "content": r["system"]}, {"role": "user", "content": r["instruction"]}]
    prompt_text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    full_text = tok.apply_chat_template(msgs + [{"role": "assistant", "content": r["output"]}], tokenize=False)
    prompt = tok(prompt_text, add_special_tokens=False)["input_ids"]
    full = tok(full_text, add_special_tokens=False)["input_ids"][:1024]
    labels = [-100] * min(len(prompt), len(full)) + full[len(prompt):]
    features.append({"input_ids": full, "labels": labels, "attention_mask": [1] * len(full)})

model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32 if method == "full" else torch.bfloat16,
                                             attn_implementation="sdpa").cuda()
if method == "lora":
    from peft import LoraConfig, get_peft_model
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
counted = []
base_collator = DataCollatorForSeq2Seq(tok, padding="longest", label_pad_token_id=-100)
def collate(batch):
    out = base_collator(batch)
    counted.append(int(out["attention_mask"].sum()))
    return out

marks = []
class Clock(TrainerCallback):
    def on_step_end(self, args, state, control, **kw):
        torch.cuda.synchronize()
        marks.append((time.perf_counter(), sum(counted)))

args = TrainingArguments(output_dir=f"{bench}/hf-out", per_device_train_batch_size=bs, gradient_accumulation_steps=ga,
                         max_steps=steps, learning_rate=1e-5, lr_scheduler_type="cosine", bf16=True, logging_steps=1000,
                         save_strategy="no", report_to=[], dataloader_num_workers=0, gradient_checkpointing=False,
                         remove_unused_columns=False, seed=42)
torch.cuda.reset_peak_memory_stats()
Trainer(model=model, args=args, train_dataset=features, data_collator=collate, callbacks=[Clock()]).train()
(t0, n0), (t1, n1) = marks[2], marks[-1]
print(json.dumps({"system": "hf", "method": method, "bs": bs, "ga": ga, "tokens_per_s": (n1 - n0) / (t1 - t0),
                  "peak_gib": torch.cuda.max_memory_reserved() / 2**30}))
