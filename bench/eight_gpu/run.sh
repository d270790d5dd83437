#!/usr/bin/env bash
# A full 8-GPU node, and the same 8 GPUs as two 4-GPU "nodes" (two pdsd-launch agents on this host,
# each with its own CUDA_VISIBLE_DEVICES): full SFT of a Qwen2.5-7B-shaped model under ZeRO-2 and
# ZeRO-3, LoRA of a Qwen2.5-32B-shaped model under ZeRO-3 (random weights, HF layout). Prints
# tokens/s per GPU, scaling efficiency against the 1- and 2-GPU runs of the same setting, peak memory
# per GPU, time to the first step; the engine's collectives against plain NCCL on every rank; and a
# kill -9 of one worker mid-run (the job restarts from its last checkpoint; the time lost is reported).
# Usage (after scripts/gpu_suite.sh built build-gpu/): bench/eight_gpu/run.sh OUT STEPS [PHASE...]
# PHASES: prep collectives rows7b rows32b kill table (default: all, in that order). A phase can run
# in a later call on the same machine: rows already in OUT/rows.jsonl are not measured again, so a
# call cut off by a time limit resumes where it stopped. With 4 GPUs it runs the 4-GPU half.
# STAGES="2" limits the 7B rows to ZeRO-2.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${1:-$repo/out/eight-gpu}
steps=${2:-10}
shift $(( $# < 2 ? $# : 2 ))
phases=" ${*:-prep collectives rows7b rows32b kill table} "
mkdir -p "$out"
# shellcheck source=../lib/sharded_rows.sh
source "$repo/bench/lib/sharded_rows.sh"
half=$((gpus / 2))
data=$out/small/data
rows=$out/rows.jsonl
touch "$rows"
wants() { [[ "$phases" == *" $1 "* ]]; }
once() { row "$@" | tee -a "$rows"; }  # row skips what rows.jsonl has already

if wants prep; then
  [ -d "$out/small" ] || python3 "$repo/bench/sft_throughput/make_model_and_data.py" "$out/small" 2000 > "$out/make.log" 2>&1
  [ -f "$out/qwen2.5-7b-shape/model.safetensors.index.json" ] ||
    python3 "$repo/bench/sharded_throughput/make_shape.py" "$out/qwen2.5-7b-shape" 7b >> "$out/make.log" 2>&1
fi
if wants collectives; then
  "$repo/build-gpu/bin/pdsd-launch" --nproc "$gpus" --standalone -- "$repo/build-gpu/bin/pdsd-bench-collectives" \
    --min-mib 16 --max-mib 1024 > "$out/collectives.log" 2>&1 || tail -20 "$out/collectives.log"
fi
if wants rows7b; then
  for stage in ${STAGES:-2 3}; do
    once qwen2.5-7b-shape 1 2 $stage full
    once qwen2.5-7b-shape 1 "$gpus" $stage full
    once qwen2.5-7b-shape 2 "$half" $stage full
  done
fi
if wants rows32b; then
  [ -f "$out/qwen2.5-32b-shape/model.safetensors.index.json" ] ||
    python3 "$repo/bench/sharded_throughput/make_shape.py" "$out/qwen2.5-32b-shape" 32b >> "$out/make.log" 2>&1
  once qwen2.5-32b-shape 1 1 3 lora
  once qwen2.5-32b-shape 1 2 3 lora
  once qwen2.5-32b-shape 1 "$gpus" 3 lora
  once qwen2.5-32b-shape 2 "$half" 3 lora
fi

# kill -9 of one worker mid-run on every GPU: the agent restarts the workers from the newest checkpoint.
# Time lost = from the kill to the first new step, plus the steps redone since that checkpoint.
if wants kill; then
  rm -rf "$out/qwen2.5-32b-shape"  # a 91 GB checkpoint of the 7B shape needs the disk
  kill_run=$out/kill total=19  # one save (step 10), the kill a few steps later, then steps 11-19 again
  "$repo/build-gpu/bin/pdsd-launch" --nproc "$gpus" --standalone --max-restarts 1 --stop-grace 10 configs/sft.yaml \
    "model_name_or_path=$out/qwen2.5-7b-shape" "dataset_dir=$data" dataset=synthetic_sft template=qwen cutoff_len=1024 \
    per_device_train_batch_size=4 gradient_accumulation_steps=1 bf16=true zero_stage=3 max_steps=$total save_steps=10 \
    logging_steps=1 val_size=0 "output_dir=$kill_run" overwrite_output_dir=true > "$out/kill.log" 2>&1 &
  launcher=$!
  for _ in $(seq 1500); do [ -d "$kill_run/checkpoint-10" ] && break; sleep 0.2; done
  sleep 4  # a few steps past the checkpoint: they are lost and redone
  victim=$(pgrep -f "pdsd-worker .*output_dir=$kill_run" | tail -1 || true)
  killed_at=$(date +%s.%N)
  if [ -n "$victim" ] && [ -d "$kill_run/checkpoint-10" ]; then
    kill -9 "$victim"
    wait "$launcher" || echo "the restarted job failed (see kill.log)"
    python3 - "$out/kill.log" "$kill_run/trainer_log.jsonl" "$killed_at" "$gpus" "$total" <<'PY' | tee "$out/kill.txt"
import json, re, sys
from datetime import datetime
text = open(sys.argv[1], errors="replace").read()
killed, total = float(sys.argv[3]), sys.argv[5]
resumed = re.search(r"resumed from \S+ at step (\d+)", text)
steps = [datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
         for m in re.finditer(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\].*\bstep \d+/" + total, text)]
after = [t for t in steps if t > killed]
log = [json.loads(l) for l in open(sys.argv[2])]
per_step = sum(r["tokens"] / r["tokens_per_s"] for r in log[3:10]) / len(log[3:10])
redone = len([t for t in steps if t < killed]) - int(resumed.group(1)) if resumed else 0
print(f"kill -9 of one of {sys.argv[4]} workers (7B shape, full, ZeRO-3): resumed at step "
      f"{resumed.group(1) if resumed else '?'}; kill to first new step {after[0] - killed if after else float('nan'):.1f} s; "
      f"{redone} steps redone ({redone * per_step:.1f} s); final step {log[-1]['step']} of {total}")
PY
    # Where the time went: the save, the validation before the resume, each rank's load.
    grep -E "\] saved .*checkpoint|validated .*checkpoint|rank 0 loaded" "$out/kill.log" | sed 's/^.*\] \[info\] /  /' | tee -a "$out/kill.txt"
  else
    kill "$launcher" 2>/dev/null; wait "$launcher" || true
    echo "kill phase: no checkpoint-10 within 300 s (see kill.log)"; tail -5 "$out/kill.log"
  fi
  rm -rf "$kill_run"/checkpoint-* "$kill_run"/*.safetensors
fi

if wants table; then
  python3 "$repo/bench/lib/rows_table.py" "$rows"
  grep -E "ranks|size|MiB" "$out/collectives.log" 2>/dev/null | sed 's/^\[[^]]*\]: *//' || true
  cat "$out/kill.txt" 2>/dev/null || true
fi
