#!/usr/bin/env bash
# A change's effect on the sharded rows, measured against the build before it in one call: the same
# rows from two source trees, each with its build-gpu/ (the other one's `scripts/gpu_suite.sh` built
# it), interleaved run by run (A then B, REPEATS times) so that a host that drifts over the call
# moves both alike. Prints each build's table (bench/lib/rows_table.py) and, per row, the median of
# the paired B/A ratios.
# Usage (GPU machine): A=/path/to/old/tree B=/path/to/new/tree REPEATS=2 \
#   bench/sharded_throughput/compare_builds.sh OUT STEPS MODEL:NPROC:STAGE:METHOD[:MICRO_BATCH] ...
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=$1 steps=$2
shift 2
data=$out/data
mkdir -p "$out"
repo=$here
# shellcheck source=../lib/sharded_rows.sh
source "$here/bench/lib/sharded_rows.sh"
if [[ " $* " == *qwen2.5-7b-shape* ]]; then ensure_shapes "$out" 1; else ensure_shapes "$out" 0; fi

for rep in $(seq 1 "${REPEATS:-1}"); do
  for spec in "$@"; do
    IFS=: read -r model nproc stage method bs <<< "$spec"
    for build in A B; do
      repo=${!build}
      REPEAT=$rep MICRO_BATCH=$bs rows=$out/rows-$build.jsonl row "$model" 1 "$nproc" "$stage" "$method" >> "$out/rows-$build.jsonl"
    done
  done
done
for build in A B; do
  echo "== $build: ${!build}"
  python3 "$here/bench/lib/rows_table.py" "$out/rows-$build.jsonl"
done
python3 - "$out/rows-A.jsonl" "$out/rows-B.jsonl" <<'PY'
import json, statistics, sys
a, b = ([json.loads(l) for l in open(p) if l.startswith("{")] for p in sys.argv[1:])
key = lambda r: (r["row"], r.get("repeat", 1))
b_by = {key(r): r for r in b if not r.get("failed")}
ratios = {}
for r in a:
    if r.get("failed") or key(r) not in b_by:
        continue
    ratios.setdefault(r["row"], []).append(b_by[key(r)]["tokens_per_s_per_gpu"] / r["tokens_per_s_per_gpu"])
print(f"\n{'row':42} {'B/A tokens/s (median of pairs)':>32} {'pairs':>6}")
for row, rs in ratios.items():
    print(f"{row:42} {statistics.median(rs):>31.3f}x {len(rs):>6}")
PY
