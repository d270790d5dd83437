#!/usr/bin/env bash
# Data parallelism changes nothing but speed: 2 workers × gradient_accumulation_steps 2 see the same
# samples per optimizer step as 1 worker × 4, so the loss at every step and the final weights agree
# within float32 tolerance (full fine-tuning and LoRA).
set -euo pipefail
bin=$1
python=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
common=(max_steps=6 logging_steps=1 val_size=0 per_device_train_batch_size=2 gradient_checkpointing=false)
for method in sft lora; do
  "$bin/pdsd-launch" --nproc 1 --standalone configs/$method.yaml "${common[@]}" gradient_accumulation_steps=4 \
    "output_dir=$out/$method-1" > "$out/$method-1.txt" 2>&1 || { tail -30 "$out/$method-1.txt"; exit 1; }
  "$bin/pdsd-launch" --nproc 2 --standalone configs/$method.yaml "${common[@]}" gradient_accumulation_steps=2 \
    "output_dir=$out/$method-2" > "$out/$method-2.txt" 2>&1 || { tail -30 "$out/$method-2.txt"; exit 1; }
done
"$python" - "$out" <<'PY'
import json, sys
from safetensors.torch import load_file
out = sys.argv[1]
for method, weights in (("sft", "model.safetensors"), ("lora", "adapter_model.safetensors")):
    one = [json.loads(l) for l in open(f"{out}/{method}-1/trainer_log.jsonl")]
    two = [json.loads(l) for l in open(f"{out}/{method}-2/trainer_log.jsonl")]
    assert len(one) == len(two) == 6, (len(one), len(two))
    worst = max(abs(a["loss"] - b["loss"]) / a["loss"] for a, b in zip(one, two))
    w1, w2 = load_file(f"{out}/{method}-1/{weights}"), load_file(f"{out}/{method}-2/{weights}")
    werr = max(float((w1[k] - w2[k]).abs().max() / w1[k].abs().max().clamp_min(1e-12)) for k in w1)
    print(f"{method}: 1 worker vs 2 workers over 6 steps: max relative loss difference {worst:.2e}, "
          f"max relative weight difference {werr:.2e}")
    assert worst < 1e-5, f"{method}: losses differ"
    # Adam divides by sqrt(v): where a gradient is near zero, rounding-level differences in the summation
    # order across ranks move a weight by up to ~lr, so the weights get a looser bound than the losses.
    assert werr < 1e-3, f"{method}: final weights differ"
PY
