#!/usr/bin/env bash
# kill -9 of one worker mid-run: pdsd-launch stops the other, restarts the group (--max-restarts 1),
# the workers resume from the newest checkpoint, and the job ends with the same final loss as an
# uninterrupted run.
set -euo pipefail
bin=$1
python=$2
out=$(mktemp -d)
trap 'pkill -9 -f "output_dir=$out/" 2>/dev/null || true; rm -rf "$out"' EXIT
common=(max_steps=150 save_steps=4 logging_steps=1 val_size=0 per_device_train_batch_size=2 gradient_accumulation_steps=1)
"$bin/pdsd-launch" --nproc 2 --standalone configs/sft.yaml "${common[@]}" "output_dir=$out/ref" > "$out/ref.txt" 2>&1 \
  || { tail -30 "$out/ref.txt"; exit 1; }
"$bin/pdsd-launch" --nproc 2 --standalone --max-restarts 1 --stop-grace 5 configs/sft.yaml "${common[@]}" \
  "output_dir=$out/crash" > "$out/crash.txt" 2>&1 &
launcher=$!
for _ in $(seq 600); do [ -d "$out/crash/checkpoint-8" ] && break; sleep 0.05; done
[ -d "$out/crash/checkpoint-8" ] || { echo "no checkpoint-8 within 30 s"; tail -30 "$out/crash.txt"; exit 1; }
victim=$(pgrep -f "pdsd-worker .*output_dir=$out/crash" | tail -1)
kill -9 "$victim"
wait "$launcher" || { echo "the restarted job failed"; tail -40 "$out/crash.txt"; exit 1; }
grep -q "killed by SIGKILL" "$out/crash.txt" || { echo "no failure report"; tail -40 "$out/crash.txt"; exit 1; }
grep -q "restarting the worker group" "$out/crash.txt"
grep -q "resumed from" "$out/crash.txt" || { echo "the restart did not resume"; tail -40 "$out/crash.txt"; exit 1; }
"$python" - "$out/ref/trainer_log.jsonl" "$out/crash/trainer_log.jsonl" "$out/crash.txt" <<'PY'
import json, re, sys
ref = [json.loads(l) for l in open(sys.argv[1])]
crash = [json.loads(l) for l in open(sys.argv[2])]
resumed = re.search(r"resumed from \S+ at step (\d+)", open(sys.argv[3]).read()).group(1)
assert ref[-1]["step"] == crash[-1]["step"] == 150, (ref[-1]["step"], crash[-1]["step"])
assert ref[-1]["loss"] == crash[-1]["loss"], f"final loss {crash[-1]['loss']} vs uninterrupted {ref[-1]['loss']}"
print(f"worker killed, group restarted, resumed at step {resumed}; final loss at step 150 {crash[-1]['loss']:.6f} "
      f"== uninterrupted {ref[-1]['loss']:.6f}")
PY
