#!/usr/bin/env bash
# A full 8-GPU node, and the same 8 GPUs as two 4-GPU "nodes" (two pdsd-launch agents on this host,
# each with its own CUDA_VISIBLE_DEVICES): full SFT of a Qwen2.5-7B-shaped model under ZeRO-2 and
# ZeRO-3, LoRA of a Qwen2.5-32B-shaped model under ZeRO-3 (random weights, HF layout). Prints
# tokens/s per GPU, scaling efficiency against the 2-GPU run of the same setting, peak memory per
# GPU, time to the first step; the engine's collectives against plain NCCL on 8 ranks; and a kill -9
# of one worker mid-run (the job restarts from its last checkpoint; the time lost is reported).
# Usage (an nvidia-h200-x8 machine, after scripts/gpu_suite.sh built build-gpu/): bench/eight_gpu/run.sh OUT STEPS
# With 4 GPUs it runs the 2- and 4-GPU half.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${1:-$repo/out/eight-gpu}
steps=${2:-10}
mkdir -p "$out"
# shellcheck source=../lib/sharded_rows.sh
source "$repo/bench/lib/sharded_rows.sh"
half=$((gpus / 2))
python3 "$repo/bench/sft_throughput/make_model_and_data.py" "$out/small" 2000 > "$out/make.log" 2>&1
data=$out/small/data
python3 "$repo/bench/sharded_throughput/make_shape.py" "$out/qwen2.5-7b-shape" 7b >> "$out/make.log" 2>&1
python3 "$repo/bench/sharded_throughput/make_shape.py" "$out/qwen2.5-32b-shape" 32b >> "$out/make.log" 2>&1

{
  for stage in 2 3; do
    row qwen2.5-7b-shape 1 2 $stage full
    row qwen2.5-7b-shape 1 "$gpus" $stage full
    row qwen2.5-7b-shape 2 "$half" $stage full
  done
  row qwen2.5-32b-shape 1 2 3 lora
  row qwen2.5-32b-shape 1 "$gpus" 3 lora
  row qwen2.5-32b-shape 2 "$half" 3 lora
} | tee "$out/rows.jsonl"
"$repo/build-gpu/bin/pdsd-launch" --nproc "$gpus" --standalone -- "$repo/build-gpu/bin/pdsd-bench-collectives" \
  --min-mib 16 --max-mib 1024 > "$out/collectives.log" 2>&1 || tail -20 "$out/collectives.log"

# kill -9 of one worker mid-run on every GPU: restart from the newest checkpoint; time lost = from the
# kill to the first new step, plus the steps redone since that checkpoint.
kill_run=$out/kill
"$repo/build-gpu/bin/pdsd-launch" --nproc "$gpus" --standalone --max-restarts 1 --stop-grace 10 configs/sft.yaml \
  "model_name_or_path=$out/qwen2.5-7b-shape" "dataset_dir=$data" dataset=synthetic_sft template=qwen cutoff_len=1024 \
  per_device_train_batch_size=4 gradient_accumulation_steps=1 bf16=true zero_stage=3 max_steps=40 save_steps=10 \
  logging_steps=1 val_size=0 "output_dir=$kill_run" overwrite_output_dir=true > "$out/kill.log" 2>&1 &
launcher=$!
for _ in $(seq 1800); do [ -d "$kill_run/checkpoint-10" ] && break; sleep 0.2; done
sleep 5  # a few steps past the checkpoint: they are lost and redone
victim=$(pgrep -f "pdsd-worker .*output_dir=$kill_run" | tail -1)
killed_at=$(date +%s.%N)
kill -9 "$victim"
wait "$launcher" || echo "the restarted job failed (see kill.log)"
python3 - "$out/kill.log" "$kill_run/trainer_log.jsonl" "$killed_at" "$gpus" <<'PY'
import json, re, sys
from datetime import datetime
text = open(sys.argv[1], errors="replace").read()
killed = float(sys.argv[3])
resumed = re.search(r"resumed from \S+ at step (\d+)", text)
steps = [datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
         for m in re.finditer(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\].*\bstep \d+/40", text)]
after = [t for t in steps if t > killed]
log = [json.loads(l) for l in open(sys.argv[2])]
per_step = sum(r["tokens"] / r["tokens_per_s"] for r in log[3:12]) / len(log[3:12])
last_before = max((t for t in steps if t < killed), default=killed)
redone = len([t for t in steps if t < killed]) - int(resumed.group(1)) if resumed else 0
print(f"\nkill -9 of one of {sys.argv[4]} workers: resumed at step {resumed.group(1) if resumed else '?'}; "
      f"kill to first new step {after[0] - killed if after else float('nan'):.1f} s; {redone} steps redone "
      f"({redone * per_step:.1f} s); final step {log[-1]['step']}")
PY
python3 "$repo/bench/lib/rows_table.py" "$out/rows.jsonl"
grep -E "ranks|size|MiB" "$out/collectives.log" | sed 's/^\[[^]]*\]: *//' || true
