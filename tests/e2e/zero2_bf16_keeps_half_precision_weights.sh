#!/usr/bin/env bash
# ZeRO-2 with bf16 compute keeps the whole weights every rank computes with in bf16 and the fp32
# masters only in each rank's shard (worker/train/sharded_adamw.h). Checked here, 2 workers, 10 steps:
#  - the weights held per rank take half the bytes of ZeRO-1's fp32 replicas (2 vs 4 per weight);
#  - the loss follows one bf16 process (bf16 gradients: within 1e-2 relative, a DeepSpeed-like trade);
#  - the export at the end comes from the fp32 masters: it equals `pdsd-worker export` of the step-10
#    checkpoint exactly, and differs from a bf16 rounding of itself;
#  - that checkpoint (masters saved as shards) resumes under ZeRO-3 and under one process.
set -euo pipefail
bin=$1
python=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
common=(configs/sft.yaml bf16=true max_steps=10 save_steps=10 logging_steps=1 val_size=0 per_device_train_batch_size=2)
run() {  # name nproc key=value...
  local name=$1 nproc=$2; shift 2
  "$bin/pdsd-launch" --nproc "$nproc" --standalone "${common[@]}" "$@" "output_dir=$out/$name" > "$out/$name.txt" 2>&1 \
    || { echo "$name failed:"; tail -30 "$out/$name.txt"; exit 1; }
}
run one 1 gradient_accumulation_steps=4
run z1 2 gradient_accumulation_steps=2 zero_stage=1
run z2 2 gradient_accumulation_steps=2 zero_stage=2
grep -q "zero_stage 2: whole weights in bf16 on every rank" "$out/z2.txt" || { echo "no bf16 replicas under ZeRO-2"; exit 1; }
"$bin/pdsd-worker" export "checkpoint=$out/z2/checkpoint-10" "export_dir=$out/z2-export" > "$out/export.txt" 2>&1 \
  || { cat "$out/export.txt"; exit 1; }
# The same checkpoint resumed elsewhere: ZeRO-3 on 2 workers, and one process (2 more steps each).
run z3-resumed 2 gradient_accumulation_steps=2 zero_stage=3 max_steps=12 overwrite_output_dir=false "resume_from_checkpoint=$out/z2/checkpoint-10"
run one-resumed 1 gradient_accumulation_steps=4 max_steps=12 overwrite_output_dir=false "resume_from_checkpoint=$out/z2/checkpoint-10"
"$python" - "$out" <<'PY'
import json, sys
import torch
from safetensors.torch import load_file
out = sys.argv[1]
log = lambda run: [json.loads(l) for l in open(f"{out}/{run}/trainer_log.jsonl")]
res = lambda run: json.load(open(f"{out}/{run}/all_results.json"))
z1, z2 = res("z1")["parameter_bytes_per_rank"], res("z2")["parameter_bytes_per_rank"]
assert z2 * 2 == z1, f"ZeRO-2 bf16 holds {z2} B of weights per rank, ZeRO-1 {z1} B: not half"
one, two = log("one"), log("z2")
worst = max(abs(a["loss"] - b["loss"]) / a["loss"] for a, b in zip(one, two))
assert len(two) == 10 and worst < 1e-2, f"ZeRO-2 bf16 loss strays from one bf16 process by {worst:.1e}"
final, exported = load_file(f"{out}/z2/model.safetensors"), load_file(f"{out}/z2-export/model.safetensors")
assert final.keys() == exported.keys()
for k in final:
    assert torch.equal(final[k], exported[k]), f"{k}: the final export differs from the checkpoint's masters"
rounded = sum(int(not torch.equal(t, t.to(torch.bfloat16).float())) for t in final.values() if t.dtype == torch.float32)
assert rounded > 0, "the final export holds bf16-rounded weights, not the fp32 masters"
for run in ("z3-resumed", "one-resumed"):
    steps = [r["step"] for r in log(run)]
    assert steps[-2:] == [11, 12], (run, steps)
    text = open(f"{out}/{run}.txt").read()
    assert "resumed from" in text and "at step 10" in text, run
print(f"ZeRO-2 bf16: weights per rank {z2:,} B (ZeRO-1 fp32 replicas {z1:,} B); loss within {worst:.1e} of one bf16 "
      f"process over 10 steps; final export == export of checkpoint-10 (fp32 masters, {rounded} tensors not bf16-exact); "
      "the checkpoint resumed under ZeRO-3 (2 workers) and one process")
PY
