#!/usr/bin/env python3
"""The Python side of bench/tokenizer_throughput.cpp (HF tokenizers, one thread).

    tokenizer_throughput.py corpus OUT.jsonl --mb 20 [--kind mixed|english_code] [--seed S]
        writes about that many MB of documents (tests/peer/text_samples.py), one JSON string a line
    tokenizer_throughput.py encode TOKENIZER.json CORPUS.jsonl IDS.bin
        encodes every document with Tokenizer.encode (add_special_tokens=False) on one thread, prints
        {"seconds": ..., "tokens": ..., "bytes": ...} (encoding only), and writes the ids for the
        C++ side to compare: per document an int32 count then the int32 ids, little-endian
"""
import os

# One thread, as the C++ side: set before tokenizers is imported.
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse  # noqa: E402
import array  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "peer"))


def make_corpus(out, mb, seed, kind):
    import text_samples
    docs = text_samples.corpus(seed, int(mb * 1_000_000), kind=kind)
    with open(out, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")


def encode(tokenizer_path, corpus, ids_out):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(tokenizer_path)
    with open(corpus, encoding="utf-8") as f:
        docs = [json.loads(line) for line in f]
    t0 = time.perf_counter()
    encodings = [tok.encode(d, add_special_tokens=False).ids for d in docs]
    seconds = time.perf_counter() - t0
    with open(ids_out, "wb") as f:
        for ids in encodings:
            f.write(array.array("i", [len(ids)]).tobytes())
            f.write(array.array("i", ids).tobytes())
    print(json.dumps({"seconds": seconds, "tokens": sum(len(i) for i in encodings),
                      "bytes": sum(len(d.encode("utf-8")) for d in docs)}))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("corpus")
    c.add_argument("out")
    c.add_argument("--mb", type=float, default=20)
    c.add_argument("--seed", type=int, default=4242)
    c.add_argument("--kind", choices=["mixed", "english_code"], default="mixed")
    e = sub.add_parser("encode")
    e.add_argument("tokenizer")
    e.add_argument("corpus")
    e.add_argument("ids_out")
    args = ap.parse_args()
    if args.cmd == "corpus":
        make_corpus(args.out, args.mb, args.seed, args.kind)
    else:
        encode(args.tokenizer, args.corpus, args.ids_out)


if __name__ == "__main__":
    main()
