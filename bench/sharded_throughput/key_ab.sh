#!/usr/bin/env bash
# One job key A/B on the sharded rows, interleaved: for each repeat and row, the 1-GPU run, then the
# 2-GPU run with the defaults, then the 2-GPU run with KEY=value, one after the other. Host-bound
# rows drift by ±10% over a call, so the two runs compared are measured back to back and the table
# gives each repeat's ratio. Rows go to OUT/ab-default.jsonl and OUT/ab-variant.jsonl; each is then
# printed (bench/lib/rows_table.py: scaling against the same repeat's 1-GPU run), then the ratios.
# ONE_GPU_TOO=1 sets the key on the 1-GPU runs as well (a key that changes speed on one GPU too, such
# as cuda_graphs): each side's scaling is then against its own 1-GPU run, and the ratios cover both.
# Usage (GPU machine, after scripts/gpu_suite.sh built build-gpu/):
#   VARIANT=zero3_keep_gathered_mb=2048 REPEATS=2 bench/sharded_throughput/key_ab.sh OUT STEPS MODEL:STAGE:METHOD[:MICRO_BATCH] ...
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=$1 steps=$2
shift 2
data=$out/data
variant=${VARIANT:?set VARIANT=key=value}
mkdir -p "$out"
# shellcheck source=../lib/sharded_rows.sh
source "$repo/bench/lib/sharded_rows.sh"
if [[ " $* " == *qwen2.5-7b-shape* ]]; then ensure_shapes "$out" 1; else ensure_shapes "$out" 0; fi
a=$out/ab-default.jsonl b=$out/ab-variant.jsonl
for rep in $(seq 1 "${REPEATS:-1}"); do
  for spec in "$@"; do
    IFS=: read -r model stage method bs <<< "$spec"
    if [ "${bs:-4}" = 4 ]; then bs=; fi
    one=$(REPEAT=$rep MICRO_BATCH=$bs row "$model" 1 1 "$stage" "$method")
    echo "$one" >> "$a"
    if [ "${ONE_GPU_TOO:-0}" = 1 ]; then
      REPEAT=$rep MICRO_BATCH=$bs row "$model" 1 1 "$stage" "$method" "$variant" >> "$b"
    else
      echo "$one" >> "$b"
    fi
    REPEAT=$rep MICRO_BATCH=$bs row "$model" 1 2 "$stage" "$method" >> "$a"
    REPEAT=$rep MICRO_BATCH=$bs row "$model" 1 2 "$stage" "$method" "$variant" >> "$b"
  done
done
echo "== defaults"
python3 "$repo/bench/lib/rows_table.py" "$a"
echo "== $variant"
python3 "$repo/bench/lib/rows_table.py" "$b"
python3 - "$a" "$b" "$variant" <<'PY'
import json, sys
load = lambda p: {(r["row"], r.get("repeat", 1)): r for r in map(json.loads, open(p)) if not r.get("failed")}
a, b = load(sys.argv[1]), load(sys.argv[2])
print(f"\n{'row':42} {'repeat':>6} {'default':>9} {'variant':>9} {'ratio':>6} {'peak GiB':>13}")
for k in sorted(set(a) & set(b), key=lambda k: (k[0], k[1])):
    x, y = a[k], b[k]
    if x == y:
        continue  # the same 1-GPU run on both sides
    print(f"{k[0]:42} {k[1]:6} {x['tokens_per_s_per_gpu']:9.0f} {y['tokens_per_s_per_gpu']:9.0f} "
          f"{y['tokens_per_s_per_gpu'] / x['tokens_per_s_per_gpu']:6.3f} {x['peak_gib']:5.1f} -> {y['peak_gib']:5.1f}")
print(f"(variant: {sys.argv[3]})")
PY
