#!/usr/bin/env python3
"""Prints benchmark rows (JSON lines from row_figures.py) as a table. Scaling efficiency of a row is
its tokens/s per GPU over that of the same model, stage and method on the fewest GPUs measured.
Usage: rows_table.py ROWS.jsonl"""
import json
import re
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def key(r):  # "qwen2.5-7b-shape-2x4gpu-z3-full" -> ("qwen2.5-7b-shape", "z3-full")
    m = re.match(r"(.*)-\d+x\d+gpu-(.*)", r["row"])
    return (m.group(1), m.group(2)) if m else (r["row"], "")
base = {}
for r in rows:
    if not r.get("failed") and (key(r) not in base or r["world"] < base[key(r)]["world"]):
        base[key(r)] = r
print(f"\n{'row':38} {'tok/s/GPU':>10} {'scaling':>16} {'peak GiB/GPU':>13} {'first step s':>13}")
for r in rows:
    if r.get("failed"):
        print(f"{r['row']:38} {'failed':>10}")
        continue
    b = base[key(r)]
    eff = "" if b is r else f"{100 * r['tokens_per_s_per_gpu'] / b['tokens_per_s_per_gpu']:.1f}% vs {b['world']} GPU"
    first = r.get("time_to_first_step_s")
    print(f"{r['row']:38} {r['tokens_per_s_per_gpu']:10.0f} {eff:>16} {r['peak_gib']:13.1f} "
          f"{first if first is None else round(first, 1)!s:>13}")
