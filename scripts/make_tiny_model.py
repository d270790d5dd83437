#!/usr/bin/env python3
"""Makes the tiny example model and dataset shipped in examples/ (run once; outputs are committed).

- examples/data/: a LLaMA-Factory data dir (dataset_info.json + alpaca and sharegpt files) of small,
  learnable chat tasks (arithmetic, word reversal, capitals), generated from a fixed seed.
- examples/tiny-qwen2/: a real Hugging Face Qwen2 model dir: config.json, model.safetensors (random
  init, seed 0), generation_config.json, and a byte-level BPE tokenizer.json trained on the dataset with
  Qwen2's pre-tokenizer regex, byte-level decoder and ChatML special tokens, plus tokenizer_config.json
  carrying Qwen2's chat template, so transformers' AutoTokenizer / apply_chat_template work on it.

Usage: .venv/bin/python scripts/make_tiny_model.py [--out examples]
"""
import argparse
import json
import random
from pathlib import Path

QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Qwen2's ChatML template (as in Qwen2.5-Instruct, without tool calls).
CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}{%- if not (message.role == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Spain": "Madrid", "Egypt": "Cairo",
            "Canada": "Ottawa", "Kenya": "Nairobi", "Peru": "Lima", "Norway": "Oslo", "China": "Beijing"}
WORDS = ["apple", "river", "stone", "cloud", "green", "music", "light", "bread", "tiger", "paper"]


def make_alpaca(rng, n):
    records = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            a, b = rng.randint(1, 50), rng.randint(1, 50)
            records.append({"instruction": f"What is {a} + {b}?", "input": "", "output": f"{a} + {b} = {a + b}."})
        elif kind == 1:
            w = rng.choice(WORDS)
            records.append({"instruction": "Reverse the letters of the word.", "input": w, "output": w[::-1]})
        else:
            country = rng.choice(sorted(CAPITALS))
            records.append({"instruction": f"What is the capital of {country}?", "input": "",
                            "output": f"The capital of {country} is {CAPITALS[country]}.",
                            "system": "Answer in one sentence."})
    return records


def make_sharegpt(rng, n):
    records = []
    for _ in range(n):
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        records.append({"conversations": [
            {"from": "human", "value": f"Add {a} and {b}."},
            {"from": "gpt", "value": f"{a + b}"},
            {"from": "human", "value": "Now double it."},
            {"from": "gpt", "value": f"{2 * (a + b)}"},
        ]})
    return records


def write_data(out: Path):
    rng = random.Random(1234)
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    alpaca = make_alpaca(rng, 96)
    sharegpt = make_sharegpt(rng, 32)
    (data / "tiny_alpaca.json").write_text(json.dumps(alpaca, indent=1, ensure_ascii=False) + "\n")
    (data / "tiny_sharegpt.json").write_text(json.dumps(sharegpt, indent=1, ensure_ascii=False) + "\n")
    info = {
        "tiny_alpaca": {"file_name": "tiny_alpaca.json",
                        "columns": {"prompt": "instruction", "query": "input", "response": "output", "system": "system"}},
        "tiny_sharegpt": {"file_name": "tiny_sharegpt.json", "formatting": "sharegpt",
                          "columns": {"messages": "conversations"}},
    }
    (data / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n")
    texts = [r["instruction"] + " " + r["input"] + " " + r["output"] for r in alpaca]
    texts += [t["value"] for r in sharegpt for t in r["conversations"]]
    texts += ["You are a helpful assistant.", "Answer in one sentence.", "system user assistant"]
    return texts


def write_tokenizer(model_dir: Path, texts):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, min_frequency=2, special_tokens=[],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    tok.add_special_tokens(SPECIAL_TOKENS)
    tok.save(str(model_dir / "tokenizer.json"))
    tokenizer_config = {
        "tokenizer_class": "Qwen2Tokenizer",
        "bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": None,
        "add_prefix_space": False, "model_max_length": 1024, "errors": "replace", "split_special_tokens": False,
        "chat_template": CHAT_TEMPLATE,
    }
    (model_dir / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n")
    return tok.get_vocab_size()


def write_model(model_dir: Path, vocab_size: int, pad_id: int, eos_id: int):
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=vocab_size, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
                         bos_token_id=pad_id, eos_token_id=eos_id, pad_token_id=pad_id)
    model = Qwen2ForCausalLM(config).to(torch.float32)
    model.save_pretrained(model_dir, safe_serialization=True)
    GenerationConfig(bos_token_id=pad_id, eos_token_id=[eos_id, pad_id], pad_token_id=pad_id,
                     do_sample=False).save_pretrained(model_dir)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "examples"))
    args = parser.parse_args()
    out = Path(args.out)
    texts = write_data(out)
    model_dir = out / "tiny-qwen2"
    model_dir.mkdir(parents=True, exist_ok=True)
    vocab = write_tokenizer(model_dir, texts)
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    write_model(model_dir, vocab, tok.token_to_id("<|endoftext|>"), tok.token_to_id("<|im_end|>"))
    print(f"wrote {out}/data and {model_dir} (vocab {vocab})")


if __name__ == "__main__":
    main()
