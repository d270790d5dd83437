#!/usr/bin/env bash
# Where data parallelism loses time: one row of the sharded benchmark (0.5B-shaped, bs4, 8 micro-batches
# per step in all, as the rows) run on 1 GPU and on 2, with PDSD_PROFILE recording steps 6..7 on every rank, then a summary of each rank's
# trace (bench/lib/trace_summary.py): compute-stream busy and idle time, idle time spent waiting on
# NCCL or on host synchronisation, and the longest gaps. Extra key=value arguments go to every run
# (e.g. communication_data_type=fp32), so two calls compare a setting; WORLDS="2" skips the 1-GPU run
# and TAG names the runs apart. MODEL=qwen2.5-7b-shape profiles the 7B shape instead (written by
# make_shape.py if OUT lacks it). PROFILE_AT=FIRST:COUNT (6:2) and STEPS (9) move the profiled steps
# later, past start-up costs such as cuda_graphs' captures.
# Usage (GPU machine, after bench/sharded_throughput/run.sh made OUT's model and data):
#   bench/sharded_throughput/profile.sh OUT STAGE METHOD [key=value ...]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=$1 stage=${2:-2} method=${3:-full}
shift 3 || shift $#
data=$out/data
model=${MODEL:-qwen2.5-0.5b-shape}
[ -d "$out/qwen2.5-0.5b-shape" ] || python3 "$repo/bench/sft_throughput/make_model_and_data.py" "$out" 2000 > "$out/make.log" 2>&1
[ -d "$out/$model" ] || python3 "$repo/bench/sharded_throughput/make_shape.py" "$out/$model" "$(basename "${model#qwen2.5-}" -shape)" >> "$out/make.log" 2>&1
extra=(finetuning_type=$method "$@")
[ "$method" = lora ] && extra+=(lora_target=q_proj,v_proj lora_rank=8 lora_alpha=16)
profile_at=${PROFILE_AT:-6:2} steps=${STEPS:-9}
export NCCL_NVLS_ENABLE=0 PDSD_PROFILE=$profile_at
for world in ${WORLDS:-1 2}; do
  name=profile-${model%-shape}-z$stage-$method-$world${TAG:+-$TAG}
  "$repo/build-gpu/bin/pdsd-launch" --nproc $world --standalone configs/sft.yaml "model_name_or_path=$out/$model" \
    "dataset_dir=$data" dataset=synthetic_sft template=qwen cutoff_len=1024 per_device_train_batch_size=4 \
    gradient_accumulation_steps=$((8 / world)) bf16=true gradient_checkpointing=false max_steps=$steps logging_steps=1 val_size=0 \
    save_steps=100000 zero_stage="$stage" "output_dir=$out/$name" overwrite_output_dir=true "${extra[@]}" \
    > "$out/$name.log" 2>&1 || { tail -20 "$out/$name.log"; exit 1; }
  echo "== $name: tokens/s per GPU from step 4 on, the profiled steps and the one after them left out; last loss:" "$(python3 -c '
import json, sys
all = [json.loads(l) for l in open(sys.argv[1])]
first, count = map(int, sys.argv[3].split(":"))
r = [x for x in all if x["step"] >= 4 and not first <= x["step"] <= first + count]
print(all[-1]["loss"], end=" ")
print(round(sum(x["tokens"] for x in r) / sum(x["tokens"] / x["tokens_per_s"] for x in r) / int(sys.argv[2])))
' "$out/$name/trainer_log.jsonl" $world "$profile_at")"
  for r in $(seq 0 $((world - 1))); do python3 "$repo/bench/lib/trace_summary.py" "$out/$name/profile-rank$r.json"; done
done
