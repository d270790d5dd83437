#!/usr/bin/env bash
# Two pdsd-launch agents on loopback as 2 nodes x 2 workers train configs/sft.yaml to the end, while
# `pdsd-ctl status` shows every rank's step; then the same job with kill -9 of one worker on node 1
# mid-run: the coordinator restarts all 4 workers together, both agents print the same root cause,
# the workers resume from the newest checkpoint, and the job ends with the same final loss as the
# uninterrupted run. No process of either run survives.
set -euo pipefail
bin=$1
python=$2
out=$(mktemp -d)
export PDSD_RUNTIME_DIR=$out/runtime  # this test's job registry, apart from any other job on the host
mkdir -m 700 "$PDSD_RUNTIME_DIR"
trap 'pkill -9 -f "output_dir=$out/" 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$out"' EXIT
port() { "$python" tests/e2e/free_port.py; }
common=(max_steps=150 save_steps=4 logging_steps=1 val_size=0 per_device_train_batch_size=2 gradient_accumulation_steps=1)

# 1. Uninterrupted, node ranks assigned at the rendezvous, the token found in the registry.
p=$(port)
for n in 0 1; do
  "$bin/pdsd-launch" --nnodes 2 --nproc 2 --rdzv-endpoint "127.0.0.1:$p" --rdzv-id ref configs/sft.yaml "${common[@]}" \
    "output_dir=$out/ref" > "$out/ref$n.txt" 2>&1 &
  eval "ref$n=\$!"
  sleep 0.3  # the first one binds the endpoint and hosts the coordinator
done
seen=""
for _ in $(seq 300); do
  if "$bin/pdsd-ctl" status > "$out/status.txt" 2>&1 &&
     "$python" - "$out/status.txt" <<'PY'
import re, sys
rows = [l.split() for l in open(sys.argv[1]) if re.match(r"\s+\d+\s+\d+\s+\d+\s+\d+\s+[\d.]+\s+[\d.]+\s+[\d.]+ s ago", l)]
ranks = {int(r[0]): int(r[3]) for r in rows}
sys.exit(0 if sorted(ranks) == [0, 1, 2, 3] and all(s > 0 for s in ranks.values()) else 1)
PY
  then seen=yes; break; fi
  sleep 0.1
done
[ -n "$seen" ] || { echo "pdsd-ctl status never showed 4 ranks with steps"; cat "$out/status.txt"; exit 1; }
grep -q "running" "$out/status.txt"
wait "$ref0" || { echo "agent 0 failed"; tail -30 "$out/ref0.txt"; exit 1; }
wait "$ref1" || { echo "agent 1 failed"; tail -30 "$out/ref1.txt"; exit 1; }
echo "pdsd-ctl status on the running job:"; sed -n 1,12p "$out/status.txt"

# 2. kill -9 of a worker on node 1 mid-run; explicit node ranks and a token from the environment.
export PDSD_JOB_TOKEN=$("$python" -c 'import secrets; print(secrets.token_hex(32))')
p=$(port)
for n in 0 1; do
  "$bin/pdsd-launch" --nnodes 2 --nproc 2 --node-rank $n --rdzv-endpoint "127.0.0.1:$p" --max-restarts 1 --stop-grace 5 \
    configs/sft.yaml "${common[@]}" "output_dir=$out/crash" > "$out/crash$n.txt" 2>&1 &
  eval "crash$n=\$!"
done
for _ in $(seq 600); do [ -d "$out/crash/checkpoint-8" ] && break; sleep 0.05; done
[ -d "$out/crash/checkpoint-8" ] || { echo "no checkpoint-8 within 30 s"; tail -30 "$out/crash0.txt"; exit 1; }
victim=$(pgrep -f "pdsd-worker .*output_dir=$out/crash" | while read -r pid; do
  if grep -qz '^RANK=3$' "/proc/$pid/environ" 2>/dev/null; then echo "$pid"; fi; done | head -1)
[ -n "$victim" ] || { echo "rank 3 not found"; exit 1; }
kill -9 "$victim"
wait "$crash0" || { echo "agent 0: the restarted job failed"; tail -40 "$out/crash0.txt"; exit 1; }
wait "$crash1" || { echo "agent 1: the restarted job failed"; tail -40 "$out/crash1.txt"; exit 1; }
for n in 0 1; do
  grep -q "root cause : rank 3 (local rank 1, pid $victim, node 1)" "$out/crash$n.txt" || { echo "agent $n: no root cause"; tail -40 "$out/crash$n.txt"; exit 1; }
  grep -q "killed by SIGKILL" "$out/crash$n.txt"
  grep -q "restarting the worker group (restart 1 of 1)" "$out/crash$n.txt"
  grep -q "attempt 1: starting 2 workers" "$out/crash$n.txt"
done
grep -q "resumed from" "$out/crash0.txt" || { echo "the restart did not resume"; tail -40 "$out/crash0.txt"; exit 1; }
! grep -q "PDSD_JOB_TOKEN=\|$PDSD_JOB_TOKEN" "$out/crash0.txt" "$out/crash1.txt" "$out/ref0.txt" || { echo "a token was printed in full"; exit 1; }
if pgrep -f "output_dir=$out/" > /dev/null; then echo "orphans:"; pgrep -af "output_dir=$out/"; exit 1; fi
"$python" - "$out/ref/trainer_log.jsonl" "$out/crash/trainer_log.jsonl" "$out/crash0.txt" <<'PY'
import json, re, sys
ref = [json.loads(l) for l in open(sys.argv[1])]
crash = [json.loads(l) for l in open(sys.argv[2])]
resumed = re.search(r"resumed from \S+ at step (\d+)", open(sys.argv[3]).read()).group(1)
assert ref[-1]["step"] == crash[-1]["step"] == 150, (ref[-1]["step"], crash[-1]["step"])
assert ref[-1]["loss"] == crash[-1]["loss"], f"final loss {crash[-1]['loss']} vs uninterrupted {ref[-1]['loss']}"
print(f"2 nodes x 2 workers: rank 3 killed, all 4 restarted, resumed at step {resumed}; final loss at step 150 "
      f"{crash[-1]['loss']:.6f} == uninterrupted {ref[-1]['loss']:.6f}")
PY
