#!/usr/bin/env bash
# Sharded data parallelism on 1 and 2 GPUs: tokens/s per GPU, peak memory per GPU and scaling
# efficiency for Qwen2.5-0.5B- and 7B-shaped models (random weights, HF layout) under ZeRO-2 and
# ZeRO-3, full and LoRA; then the engine's collectives against plain NCCL (pdsd-bench-collectives).
# Same synthetic SFT data as bench/sft_throughput (lognormal lengths, mean ~330, cutoff 1024).
# Usage (GPU machine, after scripts/gpu_suite.sh built build-gpu/): bench/sharded_throughput/run.sh OUT STEPS
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${1:-$repo/out/sharded}
steps=${2:-12}
data=$out/data
mkdir -p "$out"
# shellcheck source=../lib/sharded_rows.sh
source "$repo/bench/lib/sharded_rows.sh"
if [[ " ${SIZES:-7b} " == *" 7b "* ]]; then ensure_shapes "$out" 1; else ensure_shapes "$out" 0; fi

# SIZES="0.5b" or "7b" measures one model shape per call (rows already in rows.jsonl are kept, so a
# second call on the same machine adds the rest).
sizes=${SIZES:-0.5b 7b}
rows=$out/rows.jsonl
{
  if [[ " $sizes " == *" 0.5b "* ]]; then
    # MICRO_BATCHES="4 16" adds rows of 16 samples per micro-batch (2 per step): at 4 a 0.5B step is
    # bound by the host's per-operator cost, at 16 by the GPU. REPEATS=N measures every 0.5B row N
    # times, 1 and 2 GPUs in turn, and the table shows medians: host-bound runs vary by ±15%.
    for rep in $(seq 1 "${REPEATS:-1}"); do
      for bs in ${MICRO_BATCHES:-4}; do
        for method in full lora; do
          for stage in 2 3; do
            if [ "$bs" = 4 ]; then MB=; else MB=$bs; fi
            REPEAT=$rep MICRO_BATCH=$MB row qwen2.5-0.5b-shape 1 1 $stage $method
            REPEAT=$rep MICRO_BATCH=$MB row qwen2.5-0.5b-shape 1 2 $stage $method
          done
        done
      done
    done
  fi
  if [[ " $sizes " == *" 7b "* ]]; then
    for stage in 2 3; do
      row qwen2.5-7b-shape 1 1 $stage lora
      row qwen2.5-7b-shape 1 2 $stage lora
      row qwen2.5-7b-shape 1 2 $stage full
    done
  fi
} | tee -a "$rows"
if [ "$gpus" -ge 2 ] && [ ! -f "$out/collectives.log" ]; then
  "$repo/build-gpu/bin/pdsd-launch" --nproc 2 --standalone -- "$repo/build-gpu/bin/pdsd-bench-collectives" \
    --min-mib 4 --max-mib 1024 > "$out/collectives.log" 2>&1 || tail -20 "$out/collectives.log"
fi
python3 "$repo/bench/lib/rows_table.py" "$out/rows.jsonl"
[ -f "$out/collectives.log" ] && grep -E "ranks|size|MiB" "$out/collectives.log" | sed 's/^\[[^]]*\]: *//' || true
