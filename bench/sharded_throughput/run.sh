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
mkdir -p "$out"
here="$repo/bench/sharded_throughput"
gpus=$(nvidia-smi -L | wc -l)
python3 "$repo/bench/sft_throughput/make_model_and_data.py" "$out" 2000 > "$out/make.log" 2>&1
python3 "$here/make_shape.py" "$out/qwen2.5-7b-shape" 7b >> "$out/make.log" 2>&1
export NCCL_NVLS_ENABLE=0

peak_of() {  # runs a command while sampling GPU memory; echoes the peak MiB on any one GPU
  local log=$1; shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$log.mem" &
  local sampler=$!
  local rc=0
  "$@" > "$log" 2>&1 || rc=$?
  kill $sampler; wait $sampler 2>/dev/null || true
  if [ $rc -ne 0 ]; then echo "FAILED ($rc): $*" >&2; grep -E "error|Error|fatal|out of memory" "$log" | head -5 >&2; echo -1; return 0; fi
  awk 'BEGIN{m=0} {if ($1>m) m=$1} END{print m}' "$log.mem"
}

row() {  # model world stage method
  local model=$1 world=$2 stage=$3 method=$4 name="$1-$2gpu-z$3-$4"
  [ "$world" -gt "$gpus" ] && return 0
  local extra=(finetuning_type=$method)
  [ "$method" = lora ] && extra+=(lora_target=q_proj,v_proj lora_rank=8 lora_alpha=16)
  local mib
  mib=$(peak_of "$out/$name.log" "$repo/build-gpu/bin/pdsd-launch" --nproc "$world" --standalone configs/sft.yaml \
        "model_name_or_path=$out/$model" "dataset_dir=$out/data" dataset=synthetic_sft template=qwen \
        cutoff_len=1024 per_device_train_batch_size=4 gradient_accumulation_steps=4 bf16=true \
        gradient_checkpointing=false "max_steps=$steps" logging_steps=1 learning_rate=1e-5 val_size=0 save_steps=100000 \
        zero_stage=$stage "output_dir=$out/$name" overwrite_output_dir=true "${extra[@]}")
  python3 - "$out/$name/trainer_log.jsonl" "$name" "$mib" "$world" <<'PY'
import json, os, sys
path, name, mib, world = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
if mib < 0 or not os.path.exists(path):
    print(json.dumps({"row": name, "failed": True})); sys.exit()
log = [json.loads(l) for l in open(path)][3:]
tokens = sum(r["tokens"] for r in log); seconds = sum(r["tokens"] / r["tokens_per_s"] for r in log)
print(json.dumps({"row": name, "world": world, "tokens_per_s_per_gpu": tokens / seconds / world, "peak_gib": mib / 1024}))
PY
}

{
  for method in full lora; do
    for stage in 2 3; do
      row qwen2.5-0.5b-shape 1 $stage $method
      row qwen2.5-0.5b-shape 2 $stage $method
    done
  done
  row qwen2.5-7b-shape 1 3 lora
  row qwen2.5-7b-shape 2 3 lora
  row qwen2.5-7b-shape 2 3 full
} | tee "$out/rows.jsonl"
if [ "$gpus" -ge 2 ]; then
  "$repo/build-gpu/bin/pdsd-launch" --nproc 2 --standalone -- "$repo/build-gpu/bin/pdsd-bench-collectives" \
    --min-mib 4 --max-mib 1024 > "$out/collectives.log" 2>&1 || tail -20 "$out/collectives.log"
fi
python3 - "$out/rows.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
by = {r["row"]: r for r in rows}
print(f"\n{'row':34} {'tok/s/GPU':>10} {'scaling':>8} {'peak GiB/GPU':>13}")
for r in rows:
    if r.get("failed"):
        print(f"{r['row']:34} {'failed':>10}"); continue
    one = by.get(r["row"].replace("-2gpu-", "-1gpu-"))
    eff = f"{100 * r['tokens_per_s_per_gpu'] / one['tokens_per_s_per_gpu']:7.1f}%" if r["world"] == 2 and one and not one.get("failed") else ""
    print(f"{r['row']:34} {r['tokens_per_s_per_gpu']:10.0f} {eff:>8} {r['peak_gib']:13.1f}")
PY
[ -f "$out/collectives.log" ] && grep -E "ranks|size|MiB" "$out/collectives.log" | sed 's/^\[[^]]*\]: *//' || true
