#!/usr/bin/env python3
"""Benchmark inputs: a Qwen2.5-0.5B-shaped model dir (random bf16 weights, HF layout: hidden 896, 24
layers, 14 heads, 2 KV heads, MLP 4864, vocab 151936, tied) with the tiny example tokenizer, and a
LLaMA-Factory data dir of synthetic SFT samples whose token lengths are lognormal with mean ~330
(cut at 1024), ~30% prompt. Usage: make_model_and_data.py OUT_DIR [N_SAMPLES]"""
import json
import math
import random
import shutil
import sys
from pathlib import Path

import torch
from tokenizers import Tokenizer
from transformers import Qwen2Config, Qwen2ForCausalLM

out = Path(sys.argv[1])
n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
tiny = Path(__file__).resolve().parents[2] / "examples" / "tiny-qwen2"
model_dir = out / "qwen2.5-0.5b-shape"
model_dir.mkdir(parents=True, exist_ok=True)
torch.manual_seed(0)
config = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                     num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                     rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
                     bos_token_id=445, eos_token_id=447, pad_token_id=445)
with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
model.save_pretrained(model_dir, safe_serialization=True)
for f in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
    shutil.copy(tiny / f, model_dir / f)

tok = Tokenizer.from_file(str(tiny / "tokenizer.json"))
words = [t[1:] for t in tok.get_vocab() if t.startswith("\u0120") and t[1:].isalpha() and len(t) > 2]
rng = random.Random(0)
mu = math.log(330) - 0.18  # lognormal(sigma=0.6) has mean exp(mu + 0.18)
records = []
for _ in range(n):
    length = min(1000, max(24, int(rng.lognormvariate(mu, 0.6))))
    prompt = max(4, int(0.3 * length))
    records.append({"instruction": " ".join(rng.choice(words) for _ in range(prompt)),
                    "output": " ".join(rng.choice(words) for _ in range(length - prompt)),
                    "system": "You are a helpful assistant."})
data = out / "data"
data.mkdir(exist_ok=True)
(data / "synthetic_sft.json").write_text(json.dumps(records))
(data / "dataset_info.json").write_text(json.dumps({"synthetic_sft": {"file_name": "synthetic_sft.json", "columns": {
    "prompt": "instruction", "response": "output", "system": "system"}}}))
print(f"model {model_dir}, {n} samples")
