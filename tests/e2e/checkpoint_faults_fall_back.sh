#!/usr/bin/env bash
# Checkpoints never lose work, by fault injection (2 workers on CPU, full SFT):
#  1. a bit-flipped (CRC-32 mismatch), a truncated and two half-written checkpoints (a .tmp- folder,
#     a folder without manifest.json) are skipped by resume_from_checkpoint=auto, each with a message
#     naming the file, and the run falls back to the newest good one — and then continues exactly as
#     the uninterrupted run did; naming the bit-flipped one is an error (exit 2) naming the file;
#  2. a full disk during a save (PDSD_FAULT_INJECT=save_enospc_after_bytes:N) is reported naming the
#     file, publishes nothing, leaves the previous checkpoint intact, and training goes on;
#  3. one rank killed mid-save (PDSD_FAULT_INJECT=crash_rank1_during_save:4) publishes nothing; the
#     next run ignores the half-written folder and resumes from the previous checkpoint.
set -euo pipefail
bin=$1
python=$2
out=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$out"' EXIT
common=(max_steps=6 save_steps=2 logging_steps=1 val_size=0 per_device_train_batch_size=2 gradient_accumulation_steps=1
        ddp_timeout=30 save_total_limit=-1)
launch() {  # name expected-rc [launcher options --] extra...
  local name=$1 want=$2; shift 2
  local rc=0
  "$bin/pdsd-launch" --nproc 2 --standalone --stop-grace 5 configs/sft.yaml "${common[@]}" "$@" > "$out/$name.txt" 2>&1 || rc=$?
  [ "$rc" = "$want" ] || { echo "$name: exit code $rc, expected $want"; tail -30 "$out/$name.txt"; exit 1; }
}
expect() {  # file pattern what
  grep -qE "$2" "$1" || { echo "missing in $(basename "$1"): $3"; tail -30 "$1"; exit 1; }
}

# --- 1. corrupted checkpoints are skipped ---------------------------------------------------------
launch ref 0 "output_dir=$out/ref"
cp "$out/ref/trainer_log.jsonl" "$out/ref-log.jsonl"
run=$out/ref
"$python" - "$run" <<'PY'
import os, shutil, sys
run = sys.argv[1]
p = f"{run}/checkpoint-6/optimizer-rank0.safetensors"      # one bit flipped in the middle
data = bytearray(open(p, "rb").read()); data[len(data) // 2] ^= 0x10; open(p, "wb").write(data)
p = f"{run}/checkpoint-4/model.safetensors"                # cut short
os.truncate(p, os.path.getsize(p) // 2)
shutil.copytree(f"{run}/checkpoint-2", f"{run}/checkpoint-8")   # published without a manifest
os.remove(f"{run}/checkpoint-8/manifest.json")
shutil.copytree(f"{run}/checkpoint-2", f"{run}/.tmp-checkpoint-10")  # a save that never finished
os.remove(f"{run}/.tmp-checkpoint-10/manifest.json")
PY
launch named 2 "output_dir=$run" resume_from_checkpoint=6 overwrite_output_dir=false
expect "$out/named.txt" "checkpoint-6/optimizer-rank0.safetensors: CRC-32 [0-9a-f]{8}, the manifest says" \
  "a named bit-flipped checkpoint refused naming the file"
launch auto 0 "output_dir=$run" resume_from_checkpoint=auto overwrite_output_dir=false
expect "$out/auto.txt" "ignoring .*/\.tmp-checkpoint-10: a save that never finished" "the half-written .tmp folder"
expect "$out/auto.txt" "skipping .*/checkpoint-8: .*checkpoint-8/manifest.json: missing" "the folder without manifest"
expect "$out/auto.txt" "skipping .*/checkpoint-6: .*checkpoint-6/optimizer-rank0.safetensors: CRC-32" "the bit flip"
expect "$out/auto.txt" "skipping .*/checkpoint-4: .*checkpoint-4/model.safetensors: [0-9]+ bytes, the manifest says [0-9]+ \(truncated\)" \
  "the truncation"
expect "$out/auto.txt" "resumed from .*/checkpoint-2 at step 2" "the fallback to checkpoint-2"
"$python" - "$out/ref-log.jsonl" "$run/trainer_log.jsonl" <<'PY'
import json, sys
ref = [json.loads(l) for l in open(sys.argv[1])]
got = [json.loads(l) for l in open(sys.argv[2])]
assert [r["step"] for r in got] == list(range(1, 7)), [r["step"] for r in got]
for a, b in zip(ref, got):
    assert a["loss"] == b["loss"], f"step {a['step']}: {a['loss']} vs {b['loss']}"
print("corrupted checkpoints 8 (no manifest), 6 (bit flip), 4 (truncated) and .tmp-10 skipped; "
      f"resumed from checkpoint-2, steps 3-6 bit-identical to the uninterrupted run (loss {got[-1]['loss']:.6f})")
PY

# --- 2. a full disk during a save ----------------------------------------------------------------
# Rank 0 writes model + optimizer + RNG files: a budget of 1.5 checkpoints lets checkpoint-2 through
# and runs out inside checkpoint-4.
budget=$("$python" -c "import os,sys; d=sys.argv[1]; print(int(1.5*sum(os.path.getsize(f'{d}/{f}') for f in ('model.safetensors','optimizer-rank0.safetensors','rng_state_0.safetensors'))))" "$out/ref/checkpoint-2")
PDSD_FAULT_INJECT=save_enospc_after_bytes:$budget launch enospc 0 "output_dir=$out/enospc"
expect "$out/enospc.txt" "checkpoint-4 was not saved: .*/\.tmp-checkpoint-4/[a-z0-9_-]+\.safetensors: write failed: No space left on device" \
  "the full disk reported naming the file"
expect "$out/enospc.txt" "checkpoint-6 was not saved" "the next save tried again"
[ -d "$out/enospc/checkpoint-2" ] && [ ! -e "$out/enospc/checkpoint-4" ] && [ ! -e "$out/enospc/checkpoint-6" ] \
  && [ -z "$(ls -A "$out/enospc" | grep '^\.tmp-' || true)" ] || { echo "a failed save published or left something"; ls -A "$out/enospc"; exit 1; }
[ "$(cat "$out/enospc/latest")" = checkpoint-2 ] || { echo "latest moved"; exit 1; }
"$bin/pdsd-worker" export "checkpoint=$out/enospc/checkpoint-2" "export_dir=$out/enospc-export" > "$out/enospc-export.txt" 2>&1 \
  || { echo "checkpoint-2 does not validate after the failed saves"; cat "$out/enospc-export.txt"; exit 1; }
"$python" -c "import json,sys; r=json.load(open(sys.argv[1])); assert r['checkpoint_save_failures']==2, r" "$out/enospc/all_results.json"
echo "full disk: checkpoint-4 and -6 reported and not published, checkpoint-2 intact and valid, training finished"

# --- 3. a rank killed mid-save -------------------------------------------------------------------
PDSD_FAULT_INJECT=crash_rank1_during_save:4 launch crash 137 "output_dir=$out/crash"
expect "$out/crash.txt" "killed by SIGKILL" "the failure report"
[ -d "$out/crash/checkpoint-2" ] && [ ! -e "$out/crash/checkpoint-4" ] && [ -d "$out/crash/.tmp-checkpoint-4" ] \
  || { echo "the crashed save published something, or left no trace"; ls -A "$out/crash"; exit 1; }
launch crash-resume 0 "output_dir=$out/crash" resume_from_checkpoint=auto overwrite_output_dir=false
expect "$out/crash-resume.txt" "ignoring .*/\.tmp-checkpoint-4: a save that never finished" "the half-written folder"
expect "$out/crash-resume.txt" "resumed from .*/checkpoint-2 at step 2" "the resume from checkpoint-2"
"$python" - "$out/ref-log.jsonl" "$out/crash/trainer_log.jsonl" <<'PY'
import json, sys
ref = [json.loads(l) for l in open(sys.argv[1])]
got = [json.loads(l) for l in open(sys.argv[2])]
assert [r["step"] for r in got] == list(range(1, 7)), [r["step"] for r in got]
assert ref[-1]["loss"] == got[-1]["loss"], (ref[-1]["loss"], got[-1]["loss"])
print(f"rank 1 killed mid-save: nothing published; resumed from checkpoint-2, final loss {got[-1]['loss']:.6f} "
      "== uninterrupted")
PY
