#!/usr/bin/env python3
"""Prints benchmark rows (JSON lines from row_figures.py) as a table. A row measured several times
(its "repeat" 1, 2, ...) shows the median tokens/s per GPU and the spread (lowest–highest): a
host-bound step (a 0.5B model at 4 samples per micro-batch) varies from run to run by more than
the effects measured. Scaling efficiency of a row is its median tokens/s per GPU over that of the
same model, stage and method on fewer GPUs: against each of the two smallest GPU counts measured
(e.g. "96.1% vs 1, 95.0% vs 2"). With repeats, the median of the ratios of each repeat's two runs
(measured one after the other) follows in brackets: a host that speeds up or slows down over the
call then moves both runs of a pair alike.
Usage: rows_table.py ROWS.jsonl"""
import json
import re
import statistics
import sys

runs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
rows, order = {}, []  # name -> its runs; names in first-seen order
for r in runs:
    if r["row"] not in rows:
        order.append(r["row"])
    rows.setdefault(r["row"], []).append(r)


def figures(name):
    ok = [r for r in rows[name] if not r.get("failed")]
    if not ok:
        return None
    tps = [r["tokens_per_s_per_gpu"] for r in ok]
    firsts = [r["time_to_first_step_s"] for r in ok if r.get("time_to_first_step_s") is not None]
    return {"world": ok[0]["world"], "tps": statistics.median(tps),
            "by_repeat": {r.get("repeat", 1): r["tokens_per_s_per_gpu"] for r in ok}, "low": min(tps), "high": max(tps), "n": len(tps),
            "failed": len(rows[name]) - len(ok), "peak_gib": max(r["peak_gib"] for r in ok),
            "first": statistics.median(firsts) if firsts else None}


def key(name):  # "qwen2.5-7b-shape-2x4gpu-z3-full" -> ("qwen2.5-7b-shape", "z3-full")
    m = re.match(r"(.*)-\d+x\d+gpu-(.*)", name)
    return (m.group(1), m.group(2)) if m else (name, "")


fig = {n: figures(n) for n in order}
bases = {}  # key -> the rows on the two smallest world sizes, one each
for n in order:
    if fig[n] is None:
        continue
    same = {fig[b]["world"]: b for b in bases.get(key(n), [])}
    same.setdefault(fig[n]["world"], n)
    bases[key(n)] = sorted(same.values(), key=lambda b: fig[b]["world"])[:2]
print(f"\n{'row':42} {'tok/s/GPU':>10} {'runs: low-high':>18} {'scaling (paired)':>24} {'peak GiB/GPU':>13} {'first step s':>13}")
for n in order:
    f = fig[n]
    if f is None:
        print(f"{n:42} {'failed':>10}")
        continue
    def ratio(b):
        text = f"{100 * f['tps'] / fig[b]['tps']:.1f}% vs {fig[b]['world']}"
        pairs = [f["by_repeat"][k] / fig[b]["by_repeat"][k] for k in f["by_repeat"] if k in fig[b]["by_repeat"]]
        return text + (f" ({100 * statistics.median(pairs):.1f}%)" if len(pairs) > 1 else "")
    eff = ", ".join(ratio(b) for b in bases[key(n)] if fig[b]["world"] < f["world"])
    spread = f"{f['n']}: {f['low']:.0f}-{f['high']:.0f}" if f["n"] > 1 else "1"
    if f["failed"]:
        spread += f" ({f['failed']} failed)"
    first = f["first"]
    print(f"{n:42} {f['tps']:10.0f} {spread:>18} {eff:>24} {f['peak_gib']:13.1f} "
          f"{first if first is None else round(first, 1)!s:>13}")
