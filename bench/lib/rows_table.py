#!/usr/bin/env python3
"""Prints benchmark rows (JSON lines from row_figures.py) as a table. Scaling efficiency of a row is
its tokens/s per GPU over that of the same model, stage and method on fewer GPUs: against each of the
two smallest GPU counts measured (e.g. "96.1% vs 1, 95.0% vs 2").
Usage: rows_table.py ROWS.jsonl"""
import json
import re
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def key(r):  # "qwen2.5-7b-shape-2x4gpu-z3-full" -> ("qwen2.5-7b-shape", "z3-full")
    m = re.match(r"(.*)-\d+x\d+gpu-(.*)", r["row"])
    return (m.group(1), m.group(2)) if m else (r["row"], "")
bases = {}  # key -> the rows on the two smallest world sizes, one each
for r in rows:
    if r.get("failed"):
        continue
    same = {b["world"]: b for b in bases.get(key(r), [])}
    same.setdefault(r["world"], r)
    bases[key(r)] = sorted(same.values(), key=lambda b: b["world"])[:2]
print(f"\n{'row':38} {'tok/s/GPU':>10} {'scaling':>24} {'peak GiB/GPU':>13} {'first step s':>13}")
for r in rows:
    if r.get("failed"):
        print(f"{r['row']:38} {'failed':>10}")
        continue
    eff = ", ".join(f"{100 * r['tokens_per_s_per_gpu'] / b['tokens_per_s_per_gpu']:.1f}% vs {b['world']}"
                    for b in bases[key(r)] if b["world"] < r["world"])
    first = r.get("time_to_first_step_s")
    print(f"{r['row']:38} {r['tokens_per_s_per_gpu']:10.0f} {eff:>24} {r['peak_gib']:13.1f} "
          f"{first if first is None else round(first, 1)!s:>13}")
