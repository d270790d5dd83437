#!/usr/bin/env python3
"""The peer side of tests/test_tokenizer_matches_hf.cpp: what HF tokenizers does with each tokenizer.

    tokenizer_cases.py --out DIR [--cases N] [--seed S] NAME=PATH/tokenizer.json ...

writes DIR/NAME.jsonl for each tokenizer:
  line 1   {"meta": {"vocab_size": ..., "vocab": {token: id, ... incl. added tokens}, "cases": N}}
  then     {"text", "ids", "ids_special", "decoded", "decoded_skip"} for N strings from
           text_samples.cases (ids: encode(text, add_special_tokens=False); ids_special: with True;
           decoded: decode(ids, skip_special_tokens=False); decoded_skip: decode(ids_special, True))
  then     {"decode_ids", "decoded", "decoded_skip"} for id lists that are not whole encodings
           (random ids, some out of range; slices of encodings that cut characters in half).

    tokenizer_cases.py --unicode FILE

writes what HF does with each code point (for tests/test_tokenizer_unicode_matches_hf.cpp):
{"classes": {regex: [[first, last], ...]}, "nfc": {cp: text}, "nfd": {cp: text}}, the last two only
for the code points that NFC / NFD change.
"""
import argparse
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_unicode_probe  # noqa: E402
import text_samples  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

CHAT_TOKENS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>", "<|begin_of_text|>", "<|eot_id|>"]


def write_cases(name, path, out_dir, n, seed):
    tok = Tokenizer.from_file(path)
    added = [t.content for t in tok.get_added_tokens_decoder().values()]
    specials = sorted(set(added + CHAT_TOKENS))
    texts = text_samples.cases(seed, n, specials)
    encodings = tok.encode_batch(texts, add_special_tokens=False)
    with_special = tok.encode_batch(texts, add_special_tokens=True)
    ids = [e.ids for e in encodings]
    ids_special = [e.ids for e in with_special]
    decoded = tok.decode_batch(ids, skip_special_tokens=False)
    decoded_skip = tok.decode_batch(ids_special, skip_special_tokens=True)

    rng = random.Random(seed + 1)
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    decode_lists = []
    for i in range(max(200, n // 20)):
        if i % 2 == 0:
            decode_lists.append([rng.randrange(vocab_size + 8) for _ in range(rng.randint(0, 30))])
        else:
            full = ids[rng.randrange(len(ids))]
            a = rng.randint(0, len(full))
            decode_lists.append(full[a:a + rng.randint(0, 12)])
    d_plain = tok.decode_batch(decode_lists, skip_special_tokens=False)
    d_skip = tok.decode_batch(decode_lists, skip_special_tokens=True)

    with open(os.path.join(out_dir, f"{name}.jsonl"), "w", encoding="utf-8") as f:
        meta = {"vocab_size": vocab_size, "vocab": tok.get_vocab(with_added_tokens=True), "cases": len(texts)}
        f.write(dumps({"meta": meta}) + "\n")
        for rec in zip(texts, ids, ids_special, decoded, decoded_skip):
            f.write(dumps(dict(zip(["text", "ids", "ids_special", "decoded", "decoded_skip"], rec))) + "\n")
        for rec in zip(decode_lists, d_plain, d_skip):
            f.write(dumps(dict(zip(["decode_ids", "decoded", "decoded_skip"], rec))) + "\n")


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def write_unicode(path):
    classes = {p: hf_unicode_probe.ranges(hf_unicode_probe.regex_class(p))
               for p in [r"\p{L}", r"\p{N}", r"\s", r"\S", r"[^\s\p{L}\p{N}]", r"[^\r\n\p{L}\p{N}]"]}
    nfc = {cp: s for cp, s in hf_unicode_probe.nfc_per_char().items() if s != chr(cp)}
    nfd = {cp: s for cp, s in hf_unicode_probe.nfd_per_char().items() if s != chr(cp)}
    with open(path, "w", encoding="utf-8") as f:
        f.write(dumps({"classes": classes, "nfc": nfc, "nfd": nfd}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--unicode", help="write the per-code-point file here instead")
    ap.add_argument("--out")
    ap.add_argument("--cases", type=int, default=12000)
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("tokenizers", nargs="*", help="NAME=PATH")
    args = ap.parse_args()
    if args.unicode:
        write_unicode(args.unicode)
        return
    for spec in args.tokenizers:
        name, path = spec.split("=", 1)
        write_cases(name, path, args.out, args.cases, args.seed)


if __name__ == "__main__":
    main()
