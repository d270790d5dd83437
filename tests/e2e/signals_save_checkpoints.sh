#!/usr/bin/env bash
# Saves on signal and on time (2 workers on CPU):
#  - SIGUSR1 to one worker only: both ranks agree (one all-reduce per step) and a checkpoint appears at
#    the next step boundary, although save_steps is far away; training goes on;
#  - SIGTERM to pdsd-launch (as Slurm or Kubernetes send before preemption): forwarded to the workers,
#    which save at the next step boundary and exit cleanly saying so; resuming with `auto` then ends
#    with the loss of an uninterrupted run, bit for bit;
#  - save_minutes: a short interval produces checkpoints with no save_steps boundary in reach.
set -euo pipefail
bin=$1
python=$2
out=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$out"; [ -z "${launcher:-}" ] || kill -9 "$launcher" 2>/dev/null || true' EXIT
common=(max_steps=300 save_steps=100000 logging_steps=1 val_size=0 per_device_train_batch_size=2
        gradient_accumulation_steps=1 save_total_limit=-1)
"$bin/pdsd-launch" --nproc 2 --standalone configs/sft.yaml "${common[@]}" "output_dir=$out/ref" > "$out/ref.txt" 2>&1 \
  || { tail -30 "$out/ref.txt"; exit 1; }

"$bin/pdsd-launch" --nproc 2 --standalone --stop-grace 60 configs/sft.yaml "${common[@]}" "output_dir=$out/sig" \
  > "$out/sig.txt" 2>&1 &
launcher=$!
five_steps() { [ -f "$out/sig/trainer_log.jsonl" ] && [ "$(wc -l < "$out/sig/trainer_log.jsonl")" -ge 5 ]; }
wait_for() {  # what condition...
  local what=$1; shift
  for _ in $(seq 1200); do "$@" && return 0; sleep 0.05; done
  echo "timed out waiting for $what"; tail -30 "$out/sig.txt"; exit 1
}
wait_for "5 steps" five_steps
worker=$(pgrep -f "pdsd-worker .*output_dir=$out/sig" | tail -1)
kill -USR1 "$worker"
have_checkpoint() { compgen -G "$out/sig/checkpoint-*" > /dev/null; }
wait_for "a checkpoint after SIGUSR1" have_checkpoint
first=$(basename "$(compgen -G "$out/sig/checkpoint-*" | head -1)")
kill -TERM "$launcher"
rc=0
wait "$launcher" || rc=$?
launcher=
[ "$rc" = 143 ] || { echo "pdsd-launch exit code $rc after SIGTERM, expected 143 (128 + SIGTERM)"; tail -30 "$out/sig.txt"; exit 1; }
grep -qE "stopped at step [0-9]+ of 300 on SIGTERM after saving .*/checkpoint-[0-9]+; resume with" "$out/sig.txt" \
  || { echo "no clean-stop line"; tail -30 "$out/sig.txt"; exit 1; }
last=$(sed -nE 's/.*stopped at step ([0-9]+) of 300.*/\1/p' "$out/sig.txt" | head -1)
[ -f "$out/sig/checkpoint-$last/manifest.json" ] || { echo "no checkpoint-$last after SIGTERM"; ls "$out/sig"; exit 1; }
grep -q "killed by\|SIGKILL" "$out/sig.txt" && { echo "a worker had to be killed"; tail -30 "$out/sig.txt"; exit 1; }
"$bin/pdsd-launch" --nproc 2 --standalone configs/sft.yaml "${common[@]}" "output_dir=$out/sig" resume_from_checkpoint=auto \
  overwrite_output_dir=false > "$out/resume.txt" 2>&1 || { tail -30 "$out/resume.txt"; exit 1; }
grep -q "resumed from .*/checkpoint-$last at step $last" "$out/resume.txt" || { echo "did not resume from checkpoint-$last"; exit 1; }
"$python" - "$out/ref/trainer_log.jsonl" "$out/sig/trainer_log.jsonl" "$first" "$last" <<'PY'
import json, sys
ref = [json.loads(l) for l in open(sys.argv[1])]
got = [json.loads(l) for l in open(sys.argv[2])]
assert [r["step"] for r in got] == list(range(1, 301)), "steps logged twice or missing"
assert ref[-1]["loss"] == got[-1]["loss"], (ref[-1]["loss"], got[-1]["loss"])
print(f"SIGUSR1 to one worker -> {sys.argv[3]}; SIGTERM -> checkpoint-{sys.argv[4]} and a clean stop; resumed, "
      f"final loss {got[-1]['loss']:.6f} == uninterrupted")
PY

# Time-based saves: a 6 ms interval is shorter than any step, so (nearly) every step saves.
"$bin/pdsd-launch" --nproc 2 --standalone configs/sft.yaml "${common[@]}" max_steps=10 save_minutes=0.0001 \
  "output_dir=$out/timed" > "$out/timed.txt" 2>&1 || { tail -30 "$out/timed.txt"; exit 1; }
n=$(compgen -G "$out/timed/checkpoint-*" | wc -l)
[ "$n" -ge 2 ] || { echo "save_minutes produced $n checkpoint(s)"; tail -20 "$out/timed.txt"; exit 1; }
echo "save_minutes=0.0001: $n checkpoints over 10 steps with save_steps out of reach"
