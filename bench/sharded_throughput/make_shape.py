#!/usr/bin/env python3
"""A Qwen2.5-shaped model dir with random bf16 weights in Hugging Face layout (sharded safetensors with
model.safetensors.index.json), written straight from tensor shapes so a 7B shape takes seconds, not
minutes. Usage: make_shape.py OUT_DIR 0.5b|7b|32b"""
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import Qwen2Config, Qwen2ForCausalLM

SHAPES = {  # hidden, layers, heads, kv heads, mlp, vocab, tied
    "0.5b": (896, 24, 14, 2, 4864, 151936, True),
    "7b": (3584, 28, 28, 4, 18944, 152064, False),
    "32b": (5120, 64, 40, 8, 27648, 152064, False),
}
out, shape = Path(sys.argv[1]), sys.argv[2]
hidden, layers, heads, kv, mlp, vocab, tied = SHAPES[shape]
config = Qwen2Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=mlp, num_hidden_layers=layers,
                     num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=32768,
                     rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=tied,
                     bos_token_id=445, eos_token_id=447, pad_token_id=445, torch_dtype="bfloat16")
with torch.device("meta"):
    names = {k: v.shape for k, v in Qwen2ForCausalLM(config).state_dict().items()}
if tied:
    names.pop("lm_head.weight", None)
out.mkdir(parents=True, exist_ok=True)
config.save_pretrained(out)
device = "cuda" if torch.cuda.is_available() else "cpu"
gen = torch.Generator(device=device).manual_seed(0)
shard, shard_bytes, index, n = {}, 0, {}, 0
def flush():
    global shard, shard_bytes, n
    if shard:
        n += 1
        name = f"model-{n:05d}.safetensors"
        save_file(shard, str(out / name), metadata={"format": "pt"})
        index.update({k: name for k in shard})
        shard, shard_bytes = {}, 0
for name, size in names.items():
    if name.endswith("norm.weight"):
        t = torch.ones(size, dtype=torch.bfloat16)
    else:
        t = (torch.randn(size, generator=gen, device=device, dtype=torch.float32) * 0.02).to(torch.bfloat16).cpu()
    shard[name] = t
    shard_bytes += t.numel() * 2
    if shard_bytes > 4 << 30:
        flush()
flush()
total = sum(torch.Size(s).numel() * 2 for s in names.values())
(out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": index}))
tiny = Path(__file__).resolve().parents[2] / "examples" / "tiny-qwen2"
for f in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
    shutil.copy(tiny / f, out / f)
print(f"{shape}: {sum(torch.Size(s).numel() for s in names.values()) / 1e9:.2f}B parameters in {n} shards at {out}")
