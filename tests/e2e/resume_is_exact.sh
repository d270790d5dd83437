#!/usr/bin/env bash
# A run interrupted after a checkpoint and resumed with resume_from_checkpoint continues exactly: the
# loss at every later step is bit-identical to the uninterrupted run's (same data order, learning
# rate, optimizer state and RNG — LoRA dropout included), for DDP and for ZeRO-2 with 2 workers, also
# ZeRO-2 in bf16 (whole weights in bf16, fp32 masters only in the shards).
# Also: save_total_limit keeps the newest checkpoints, and `auto` picks the newest complete one.
set -euo pipefail
bin=$1
python=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
common=(max_steps=8 save_steps=4 logging_steps=1 val_size=0 per_device_train_batch_size=2 gradient_accumulation_steps=2)
run() {  # name config extra...
  local name=$1 config=$2; shift 2
  "$bin/pdsd-launch" --nproc 2 --standalone "configs/$config" "${common[@]}" "$@" "output_dir=$out/$name" \
    > "$out/$name.txt" 2>&1 || { tail -30 "$out/$name.txt"; exit 1; }
}
for case in "sft.yaml zero_stage=0" "lora.yaml zero_stage=2 lora_dropout=0.1" "sft.yaml zero_stage=2 bf16=true"; do
  set -- $case
  config=$1; shift
  tag=${config%.yaml}-${case##* }  # e.g. sft-bf16=true: every case in its own folders
  run "$tag-full" "$config" "$@" save_total_limit=1
  [ -d "$out/$tag-full/checkpoint-8" ] && [ ! -d "$out/$tag-full/checkpoint-4" ] || { echo "save_total_limit=1 kept the wrong checkpoints"; ls "$out/$tag-full"; exit 1; }
  # The interrupted run: the same job as it stood right after its step-4 checkpoint (a copy of a full
  # run's output dir without what came later), then resumed: `auto` finds checkpoint-4.
  run "$tag-ref" "$config" "$@"
  mkdir -p "$out/$tag-cut"
  cp -r "$out/$tag-ref/checkpoint-4" "$out/$tag-cut/"
  head -4 "$out/$tag-ref/trainer_log.jsonl" > "$out/$tag-cut/trainer_log.jsonl"
  run "$tag-cut" "$config" "$@" resume_from_checkpoint=auto overwrite_output_dir=false
  "$python" - "$out/$tag-full/trainer_log.jsonl" "$out/$tag-cut/trainer_log.jsonl" "$tag $*" <<'PY'
import json, sys
full = [json.loads(l) for l in open(sys.argv[1])]
cut = [json.loads(l) for l in open(sys.argv[2])]
assert [r["step"] for r in cut] == list(range(1, 9)), [r["step"] for r in cut]
for a, b in zip(full, cut):
    assert a["loss"] == b["loss"] and a["lr"] == b["lr"], f"step {a['step']}: {a['loss']} vs {b['loss']}"
print(f"{sys.argv[3]}: resumed at step 4, steps 5-8 bit-identical to the uninterrupted run "
      f"(loss at step 8: {cut[-1]['loss']:.6f})")
PY
done
