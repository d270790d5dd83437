#!/usr/bin/env bash
# A checkpoint saved at one world size and ZeRO stage resumes at another and continues with the loss
# of the uninterrupted run (within float32 tolerance: the sums run in another order), for full SFT
# (ZeRO shards cut through parameters) and LoRA:
#   2 ranks ZeRO-2 -> 1 process;  2 ranks ZeRO-2 -> 2 ranks DDP;  1 process -> 2 ranks ZeRO-2;
#   and for full SFT, where ZeRO-3 shards the weights themselves: 4 ranks ZeRO-3 -> 2 ranks ZeRO-2,
#   2 ranks ZeRO-2 -> 2 ranks ZeRO-3.
# The global batch stays 8 samples (2 ranks x accumulation 2 = 1 process x 4), so the math is the same.
# Then `pdsd-worker export` turns the 2-rank ZeRO-2 checkpoints into what users load, checked with the
# real libraries (tests/peer/check_checkpoint_export.py): transformers loads the sharded merged export
# (export_size forces several shards) with the logits of the model the training run wrote; PEFT loads
# the exported adapter with the logits of the training run's own adapter.
set -euo pipefail
bin=$1
python=$2
out=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$out"' EXIT
common=(max_steps=8 save_steps=4 logging_steps=1 val_size=0 per_device_train_batch_size=2 save_total_limit=-1
        gradient_checkpointing=false)
run() {  # name nproc config extra...
  local name=$1 nproc=$2 config=$3; shift 3
  "$bin/pdsd-launch" --nproc "$nproc" --standalone "configs/$config" "${common[@]}" "$@" "output_dir=$out/$name" \
    > "$out/$name.txt" 2>&1 || { tail -30 "$out/$name.txt"; exit 1; }
}
one=(gradient_accumulation_steps=4 zero_stage=0)
for method in sft lora; do
  run "$method-ref" 1 "$method.yaml" "${one[@]}"
  run "$method-z2" 2 "$method.yaml" gradient_accumulation_steps=2 zero_stage=2
  cases=("z2-to-1:$method-z2:1:${one[*]}" "z2-to-ddp:$method-z2:2:gradient_accumulation_steps=2 zero_stage=0"
         "1-to-z2:$method-ref:2:gradient_accumulation_steps=2 zero_stage=2")
  if [ "$method" = sft ]; then
    run sft-z3 4 sft.yaml gradient_accumulation_steps=1 zero_stage=3
    cases+=("z3-to-z2:sft-z3:2:gradient_accumulation_steps=2 zero_stage=2"
            "z2-to-z3:sft-z2:2:gradient_accumulation_steps=2 zero_stage=3")
  fi
  for case in "${cases[@]}"; do
    IFS=: read -r tag source nproc settings <<< "$case"
    mkdir -p "$out/$method-$tag"
    cp -r "$out/$source/checkpoint-4" "$out/$method-$tag/"
    head -4 "$out/$source/trainer_log.jsonl" > "$out/$method-$tag/trainer_log.jsonl"
    # shellcheck disable=SC2086
    run "$method-$tag" "$nproc" "$method.yaml" $settings resume_from_checkpoint=auto overwrite_output_dir=false
    grep -q "resharding for" "$out/$method-$tag.txt" || { echo "$method $tag: no resharding message"; tail -20 "$out/$method-$tag.txt"; exit 1; }
  done
done
"$python" - "$out" <<'PY'
import json, sys
out = sys.argv[1]
for method in ("sft", "lora"):
    ref = [json.loads(l) for l in open(f"{out}/{method}-ref/trainer_log.jsonl")]
    for tag in ("z2-to-1", "z2-to-ddp", "1-to-z2") + (("z3-to-z2", "z2-to-z3") if method == "sft" else ()):
        got = [json.loads(l) for l in open(f"{out}/{method}-{tag}/trainer_log.jsonl")]
        assert [r["step"] for r in got] == list(range(1, 9)), (method, tag, [r["step"] for r in got])
        worst = max(abs(a["loss"] - b["loss"]) / a["loss"] for a, b in zip(ref[4:], got[4:]))
        print(f"{method} {tag}: resumed at step 4, steps 5-8 within {worst:.1e} (relative) of the uninterrupted "
              f"1-process run (loss at step 8: {got[-1]['loss']:.6f} vs {ref[-1]['loss']:.6f})")
        assert worst < 1e-5, f"{method} {tag}: losses differ"
        assert all(a["lr"] == b["lr"] for a, b in zip(ref, got)), f"{method} {tag}: learning rates differ"
PY

# Export from the 2-rank ZeRO-2 checkpoints at step 8 (where the training runs ended).
"$bin/pdsd-worker" export "checkpoint=$out/lora-z2/checkpoint-8" "export_dir=$out/lora-merged" export_size=0.0002 \
  infer_dtype=float32 > "$out/export-1.txt" 2>&1 || { cat "$out/export-1.txt"; exit 1; }
"$bin/pdsd-worker" export "adapter_name_or_path=$out/lora-z2/checkpoint-8" "export_dir=$out/lora-adapter" export_adapter=true \
  > "$out/export-2.txt" 2>&1 || { cat "$out/export-2.txt"; exit 1; }
"$bin/pdsd-worker" export "model_name_or_path=$out/sft-z2/checkpoint-8" "export_dir=$out/sft-merged" export_size=0.0002 \
  > "$out/export-3.txt" 2>&1 || { cat "$out/export-3.txt"; exit 1; }
"$python" tests/peer/check_checkpoint_export.py "$out/lora-merged" "$out/lora-adapter" "$out/lora-z2" examples/tiny-qwen2 \
  "$out/sft-merged" "$out/sft-z2"

# A ZeRO-3 checkpoint holds no whole weight anywhere (each rank saved its master shards): the export
# puts them together and equals the model the 4-rank ZeRO-3 run wrote at the end.
"$bin/pdsd-worker" export "model_name_or_path=$out/sft-z3/checkpoint-8" "export_dir=$out/sft-z3-merged" \
  > "$out/export-4.txt" 2>&1 || { cat "$out/export-4.txt"; exit 1; }
"$python" - "$out/sft-z3-merged" "$out/sft-z3" <<'PY'
import sys
from safetensors.torch import load_file
from pathlib import Path
def weights(d):
    out = {}
    for f in sorted(Path(d).glob("*.safetensors")):
        out.update(load_file(f))
    return out
exported, trained = weights(sys.argv[1]), weights(sys.argv[2])
assert exported.keys() == trained.keys(), sorted(set(exported) ^ set(trained))
worst = max(float((exported[k].float() - trained[k].float()).abs().max()) for k in trained)
print(f"export of the 4-rank ZeRO-3 checkpoint: {len(exported)} tensors, max difference from the run's model {worst:.1e}")
assert worst == 0.0
PY
