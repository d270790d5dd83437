#!/usr/bin/env bash
# The same sharded rows with NCCL's SM share varied: every CTA an all-gather or reduce-scatter holds
# is an SM the overlapping GEMMs lack, and under ZeRO-3 a 7B step spends a third of its time with a
# gather in flight. Each variant is an NCCL environment variable (NCCL_MAX_CTAS, NCCL_MIN_CTAS: they
# cap the communicator's channels) or a job key (zero3_gather_engine=copy: ZeRO-3's gathers on the
# copy engines, no SMs at all) applied to the 2-GPU runs; the 1-GPU runs have no collectives and are
# measured once. Prints one table per variant (bench/lib/rows_table.py).
# Usage (GPU machine, after scripts/gpu_suite.sh built build-gpu/):
#   VARIANTS="default NCCL_MAX_CTAS=8 zero3_gather_engine=copy" bench/sharded_throughput/nccl_ctas.sh OUT STEPS MODEL:STAGE:METHOD[:MICRO_BATCH] ...
# MODEL is qwen2.5-0.5b-shape or qwen2.5-7b-shape (written here when missing).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=$1 steps=$2
shift 2
data=$out/data
mkdir -p "$out"
# shellcheck source=../lib/sharded_rows.sh
source "$repo/bench/lib/sharded_rows.sh"
if [[ " $* " == *qwen2.5-7b-shape* ]]; then ensure_shapes "$out" 1; else ensure_shapes "$out" 0; fi

one_gpu=$out/ctas-1gpu.jsonl
for spec in "$@"; do
  IFS=: read -r model stage method bs <<< "$spec"
  rows=$one_gpu MICRO_BATCH=$bs row "$model" 1 1 "$stage" "$method" >> "$one_gpu"
done
for variant in ${VARIANTS:-default}; do
  rows=$out/ctas-$variant.jsonl
  [ -f "$rows" ] || cp "$one_gpu" "$rows"
  for spec in "$@"; do
    IFS=: read -r model stage method bs <<< "$spec"
    # An upper-case NAME=value is an environment variable, anything else a job key.
    extra=()
    case $variant in default) ;; [A-Z]*) ;; *) extra=("$variant") ;; esac
    ( [[ $variant == [A-Z]* ]] && export "${variant?}"; MICRO_BATCH=$bs row "$model" 1 2 "$stage" "$method" "${extra[@]}" ) >> "$rows"
  done
  echo "== 2-GPU runs with: $variant"
  python3 "$repo/bench/lib/rows_table.py" "$rows"
done
