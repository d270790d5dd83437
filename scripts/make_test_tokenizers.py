#!/usr/bin/env python3
"""Makes the small tokenizer.json files the tokenizer tests compare against HF tokenizers.

Real Qwen2 / Llama tokenizer files cannot be downloaded here, so this trains small BPE vocabularies
(a few thousand tokens, so merges matter) with HF `tokenizers` and gives each file exactly the
normalizer, pre-tokenizer, model options, added tokens, decoder and post-processor of the real one:

  qwen2             NFC; Split(Qwen2 regex, isolated) + ByteLevel(no prefix, no regex); merges as "a b"
                    strings; <|endoftext|>, <|im_start|>, <|im_end|> (+ Qwen2.5's non-special
                    <tool_call>); post-processor ByteLevel
  llama3            no normalizer; Split(Llama 3 regex) + ByteLevel; ignore_merges; merges as [a, b];
                    256 special tokens; post-processor Sequence[ByteLevel, TemplateProcessing
                    "<|begin_of_text|> $A"]
  llama2            Sequence[Prepend("▁"), Replace(" ", "▁")]; no pre-tokenizer; byte_fallback BPE with
                    <0x00>..<0xFF>, unk <unk>, fuse_unk; decoder Sequence[Replace("▁", " "),
                    ByteFallback, Fuse, Strip(" ", 1, 0)]; TemplateProcessing "<s> $A"; plus one
                    normalized added token (matched on its normalized form "▁<extra>")
  llama2-metaspace  the newer form of Llama 2 files: no normalizer; Metaspace(prepend_scheme "first",
                    split false); decoder Sequence[ByteFallback, Metaspace, Fuse]; added tokens with
                    lstrip, rstrip, single_word and normalized set
  variety           no real model's: the remaining supported components (NFD, regex Replace, every
                    split behavior, invert, GPT-2's ByteLevel with add_prefix_space)

Training text: the Python stdlib sources plus tests/peer/text_samples.py (seeded). Run with the venv:

    .venv/bin/python scripts/make_test_tokenizers.py   # writes tests/data/tokenizers/<name>/tokenizer.json
"""
import json
import pathlib
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "peer"))
import text_samples  # noqa: E402

OUT = ROOT / "tests" / "data" / "tokenizers"
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
               r"|\s+(?!\S)|\s+")
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
                r"|\s+(?!\S)|\s+")


def training_text():
    docs = text_samples.corpus(seed=1234, target_bytes=2_500_000)
    code = "\n".join(text_samples.code_lines())
    return docs + [code[i:i + 4000] for i in range(0, min(len(code), 1_500_000), 4000)]


def byte_level_tokenizer(regex, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(training_text(), trainer)
    return tok


def make_qwen2():
    tok = byte_level_tokenizer(QWEN2_REGEX, 6000)
    tok.normalizer = normalizers.NFC()
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in
                            ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|box_end|>",
                             "<|fim_prefix|>", "<|fim_middle|>", "<|vision_pad|>"]])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in ["<tool_call>", "</tool_call>"]])
    data = json.loads(tok.to_str())
    # Qwen2's file keeps merges in the older "a b" form (byte-level tokens never contain a space).
    data["model"]["merges"] = [" ".join(m) for m in data["model"]["merges"]]
    return data


def make_llama3():
    tok = byte_level_tokenizer(LLAMA3_REGEX, 6000)
    # Whole words the merges do not build, as a real Llama 3 vocabulary has them: ignore_merges
    # makes each of these one token, so the tests see whether it is honoured. They are the words
    # seen most often in sample text that the merges split into several tokens.
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    counts = {}
    for text in text_samples.cases(seed=99, n=3000):
        for word, _ in tok.pre_tokenizer.pre_tokenize_str(text):
            counts[word] = counts.get(word, 0) + 1
    split_words = [w for w in sorted(counts, key=lambda w: (-counts[w], w)) if len(tok.model.tokenize(w)) > 1]
    for word in split_words[:300]:
        vocab[word] = len(vocab)
    tok = Tokenizer.from_str(json.dumps(data))
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|step_id|>", "<|start_header_id|>",
                "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"]
    specials += [f"<|reserved_special_token_{i}|>" for i in range(2, 2 + 256 - len(specials))]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)]),
    ])
    data = json.loads(tok.to_str())
    data["model"]["ignore_merges"] = True
    return data


def llama2_base():
    """SentencePiece-style BPE: <unk> <s> </s>, the 256 byte tokens, then merges trained on ▁-words."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")  # training only
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=4000, show_progress=False, limit_alphabet=400,
                                  special_tokens=["<unk>", "<s>", "</s>"] + byte_tokens)
    tok.train_from_iterator(training_text(), trainer)
    data = json.loads(tok.to_str())
    # The byte tokens belong to the vocabulary, not to the added tokens (as in Llama 2's file).
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] in ("<unk>", "<s>", "</s>")]
    for t in data["added_tokens"]:
        t["normalized"] = False
    return data


def template(bos_id):
    return {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [bos_id], "tokens": ["<s>"]}}}


def added(id_, content, special, normalized, lstrip=False, rstrip=False, single_word=False):
    return {"id": id_, "content": content, "single_word": single_word, "lstrip": lstrip, "rstrip": rstrip,
            "normalized": normalized, "special": special}


def make_llama2(base):
    data = json.loads(json.dumps(base))
    data["pre_tokenizer"] = None
    data["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    data["post_processor"] = template(data["model"]["vocab"]["<s>"])
    n = len(data["model"]["vocab"])
    data["added_tokens"].append(added(n, "<extra>", special=False, normalized=True))
    return data


def make_llama2_metaspace(base):
    data = json.loads(json.dumps(base))
    data["normalizer"] = None
    data["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    data["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "ByteFallback"}, {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False},
        {"type": "Fuse"}]}
    data["post_processor"] = template(data["model"]["vocab"]["<s>"])
    vocab = data["model"]["vocab"]
    n = len(vocab)
    data["added_tokens"] += [
        added(n, "<mask>", special=True, normalized=False, lstrip=True),
        added(n + 1, "[SEP]", special=True, normalized=False, rstrip=True),
        added(n + 2, "<both>", special=False, normalized=False, lstrip=True, rstrip=True),
        # Also in the model vocabulary: HF keeps the vocabulary's id for it.
        added(vocab["word"], "word", special=False, normalized=False, single_word=True),
        added(n + 3, "▁norm", special=False, normalized=True),
    ]
    return data


def make_variety():
    """Not a real model's file: every other component pdsd supports, so each is compared with HF too
    (NFD, a regex Replace, all five split behaviors, invert, a String pattern, GPT-2's ByteLevel
    with its own regex and add_prefix_space)."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.Replace(Regex(r"[0-9]{4,}"), "0000")])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\s+"), behavior="merged_with_previous"),
        pre_tokenizers.Split("::", behavior="isolated"),
        pre_tokenizers.Split(Regex(r"[(){}\[\]]"), behavior="merged_with_next"),
        pre_tokenizers.Split(Regex(r"[,;]"), behavior="removed"),
        pre_tokenizers.Split(Regex(r"\p{N}"), behavior="contiguous"),  # digit runs stay together
        pre_tokenizers.Split(Regex(r"[A-Z]"), behavior="merged_with_previous", invert=True),  # camelCase cuts
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=3000, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(training_text(), trainer)
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    tok.add_tokens([AddedToken("e\u0301t\u00e9", special=False, normalized=True)])  # matched after NFD
    return json.loads(tok.to_str())


def write(name, data):
    path = OUT / name / "tokenizer.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    Tokenizer.from_str(text)  # HF must load what we commit
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)}: {len(text.encode()) // 1024} KiB, "
          f"{len(data['model']['vocab'])} tokens, {len(data['model']['merges'])} merges")


def main():
    write("qwen2", make_qwen2())
    write("llama3", make_llama3())
    base = llama2_base()
    write("llama2", make_llama2(base))
    write("llama2-metaspace", make_llama2_metaspace(base))
    write("variety", make_variety())


if __name__ == "__main__":
    main()
