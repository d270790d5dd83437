#!/usr/bin/env bash
# SFT throughput on one GPU: pdsd against Hugging Face Trainer, same model (Qwen2.5-0.5B shape, random
# weights), same synthetic data, same batch settings, in one run. Prints a table last: tokens/s over
# non-padding tokens (steps after the first 3) and peak GPU memory (nvidia-smi, whole process, both),
# full and LoRA at bs 4 x accumulation 4 and bs 16 x 1. PDSD_PROFILE=5:3 also profiles the pdsd rows.
# Usage (on the GPU machine, after scripts/gpu_suite.sh built build-gpu/): bench/sft_throughput/run.sh OUT STEPS
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${1:-$repo/out/bench}
steps=${2:-20}
mkdir -p "$out"
here="$repo/bench/sft_throughput"
python3 "$here/make_model_and_data.py" "$out" 2000 > "$out/make.log" 2>&1

peak_of() {  # runs a command while sampling GPU memory; echoes the peak MiB above the idle baseline
  local log=$1; shift
  local base; base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$log.mem" &
  local sampler=$!
  "$@" > "$log" 2>&1 || { kill $sampler; echo "FAILED: $*" >&2; tail -20 "$log" >&2; return 1; }
  kill $sampler; wait $sampler 2>/dev/null || true
  awk -v b="$base" 'BEGIN{m=0} {if ($1-b>m) m=$1-b} END{print m}' "$log.mem"
}

pdsd_row() {  # name method packing batch accumulation
  local name=$1 method=$2 packing=$3 bs=$4 ga=$5
  local extra=(finetuning_type=$method packing=$packing)
  [ "$method" = lora ] && extra+=(lora_target=q_proj,v_proj lora_rank=8 lora_alpha=16)
  local mib
  mib=$(peak_of "$out/$name.log" "$repo/build-gpu/bin/pdsd-launch" --nproc 1 configs/sft.yaml \
        "model_name_or_path=$out/qwen2.5-0.5b-shape" "dataset_dir=$out/data" dataset=synthetic_sft template=qwen \
        cutoff_len=1024 "per_device_train_batch_size=$bs" "gradient_accumulation_steps=$ga" bf16=true \
        gradient_checkpointing=false "max_steps=$steps" logging_steps=1 learning_rate=1e-5 val_size=0 \
        "output_dir=$out/$name" overwrite_output_dir=true "${extra[@]}")
  python3 - "$out/$name/trainer_log.jsonl" "$name" "$mib" <<'PY'
import json, sys
log = [json.loads(l) for l in open(sys.argv[1])][3:]
tokens = sum(r["tokens"] for r in log); seconds = sum(r["tokens"] / r["tokens_per_s"] for r in log)
print(json.dumps({"row": sys.argv[2], "tokens_per_s": tokens / seconds, "peak_gib": float(sys.argv[3]) / 1024}))
PY
}

hf_row() {  # name method batch accumulation
  local name=$1 method=$2 bs=$3 ga=$4 mib
  mib=$(peak_of "$out/$name.log" python3 "$here/hf_trainer.py" "$out" "$method" "$bs" "$ga" "$steps")
  python3 - "$out/$name.log" "$name" "$mib" <<'PY'
import json, sys
line = [l for l in open(sys.argv[1]) if l.startswith('{"system": "hf"')][-1]
r = json.loads(line)
print(json.dumps({"row": sys.argv[2], "tokens_per_s": r["tokens_per_s"], "peak_gib": float(sys.argv[3]) / 1024,
                  "torch_reserved_gib": r["peak_gib"]}))
PY
}

{
  # The issue's four settings: full and LoRA, bs 4 x accumulation 4 and bs 16 x 1 (ROWS=bs4 keeps the first two).
  for setting in "4 4" "16 1"; do
    set -- $setting
    [ "${ROWS:-all}" = bs4 ] && [ "$1" != 4 ] && continue
    for method in full lora; do
      hf_row "hf-$method-bs$1-ga$2" $method "$1" "$2"
      pdsd_row "pdsd-$method-bs$1-ga$2" $method false "$1" "$2"
      pdsd_row "pdsd-$method-bs$1-ga$2-packed" $method true "$1" "$2"
    done
  done
} | tee "$out/rows.jsonl"
python3 - "$out/rows.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
key = lambda r: "-".join(r["row"].split("-")[1:4])  # "full-bs4-ga4"
hf = {key(r): r for r in rows if r["row"].startswith("hf-")}
print(f"\n{'row':32} {'tokens/s':>10} {'vs HF':>7} {'peak GiB':>9}")
for r in rows:
    ref = hf[key(r)]
    print(f"{r['row']:32} {r['tokens_per_s']:10.0f} {r['tokens_per_s'] / ref['tokens_per_s']:6.2f}x {r['peak_gib']:9.1f}")
PY
