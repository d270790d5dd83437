#!/usr/bin/env bash
# Data parallelism changes nothing but speed and memory: 2 workers × gradient_accumulation_steps 2 see
# the same samples per optimizer step as 1 worker × 4, so the loss at every step and the final weights
# agree within float32 tolerance — replicated (DDP, zero_stage 0) and with the optimizer state sharded
# (ZeRO-1/2), full fine-tuning and LoRA; under ZeRO each rank holds half the optimizer state.
set -euo pipefail
bin=$1
python=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
common=(max_steps=6 logging_steps=1 val_size=0 per_device_train_batch_size=2 gradient_checkpointing=false)
for method in sft lora; do
  "$bin/pdsd-launch" --nproc 1 --standalone configs/$method.yaml "${common[@]}" gradient_accumulation_steps=4 \
    zero_stage=0 "output_dir=$out/$method-1" > "$out/$method-1.txt" 2>&1 || { tail -30 "$out/$method-1.txt"; exit 1; }
  for stage in 0 2; do
    "$bin/pdsd-launch" --nproc 2 --standalone configs/$method.yaml "${common[@]}" gradient_accumulation_steps=2 \
      zero_stage=$stage "output_dir=$out/$method-2-z$stage" > "$out/$method-2-z$stage.txt" 2>&1 \
      || { tail -30 "$out/$method-2-z$stage.txt"; exit 1; }
  done
done
"$python" - "$out" <<'PY'
import json, sys
from safetensors.torch import load_file
out = sys.argv[1]
for method, weights in (("sft", "model.safetensors"), ("lora", "adapter_model.safetensors")):
    one = [json.loads(l) for l in open(f"{out}/{method}-1/trainer_log.jsonl")]
    w1 = load_file(f"{out}/{method}-1/{weights}")
    state1 = json.load(open(f"{out}/{method}-1/all_results.json"))["optimizer_state_bytes_per_rank"]
    for stage in (0, 2):
        run = f"{out}/{method}-2-z{stage}"
        two = [json.loads(l) for l in open(f"{run}/trainer_log.jsonl")]
        assert len(one) == len(two) == 6, (len(one), len(two))
        worst = max(abs(a["loss"] - b["loss"]) / a["loss"] for a, b in zip(one, two))
        w2 = load_file(f"{run}/{weights}")
        werr = max(float((w1[k] - w2[k]).abs().max() / w1[k].abs().max().clamp_min(1e-12)) for k in w1)
        state2 = json.load(open(f"{run}/all_results.json"))["optimizer_state_bytes_per_rank"]
        print(f"{method} zero_stage {stage}: 1 worker vs 2 workers over 6 steps: max relative loss difference "
              f"{worst:.2e}, max relative weight difference {werr:.2e}; optimizer state per rank {state2:,} bytes "
              f"(1 worker: {state1:,})")
        assert worst < 1e-5, f"{method} zero_stage {stage}: losses differ"
        # Adam divides by sqrt(v): where a gradient is near zero, rounding-level differences in the
        # summation order move a weight by up to ~lr, so weights get a looser bound than losses.
        assert werr < 1e-3, f"{method} zero_stage {stage}: final weights differ"
        if stage == 0:
            assert state2 == state1, "replicated DDP keeps the whole optimizer state on every rank"
        else:
            assert abs(state2 - state1 / 2) <= 64, f"ZeRO-{stage}: state per rank {state2} is not half of {state1}"
PY
