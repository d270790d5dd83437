#!/usr/bin/env bash
# PDSD_PROFILE=<first>:<steps> records those steps on every rank: a Chrome trace and a table of the
# operators by time per rank in the output dir; a malformed value is an error that names it.
set -euo pipefail
bin=$1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
PDSD_PROFILE=2:2 "$bin/pdsd-launch" --nproc 2 --standalone configs/sft.yaml max_steps=4 val_size=0 \
  "output_dir=$out/run" > "$out/run.txt" 2>&1 || { tail -30 "$out/run.txt"; exit 1; }
grep -q "PDSD_PROFILE: recording steps 2..3 on every rank" "$out/run.txt" || { echo "no profiling announced"; tail "$out/run.txt"; exit 1; }
for r in 0 1; do
  [ -s "$out/run/profile-rank$r.json" ] || { echo "no Chrome trace for rank $r"; ls "$out/run"; exit 1; }
  grep -q '"traceEvents"' "$out/run/profile-rank$r.json" || { echo "rank $r's trace is not a Chrome trace"; exit 1; }
  grep -q "^steps 2..3 of rank $r" "$out/run/profile-rank$r.txt" || { echo "rank $r's table has no header"; exit 1; }
  # The matrix products of the model's linear layers are among the operators recorded.
  grep -qE "aten::(mm|matmul|linear|addmm)" "$out/run/profile-rank$r.txt" || { echo "no matmul in rank $r's table"; cat "$out/run/profile-rank$r.txt"; exit 1; }
done
rc=0
PDSD_PROFILE=five "$bin/pdsd-launch" --nproc 1 --standalone configs/sft.yaml max_steps=2 val_size=0 "output_dir=$out/bad" \
  > "$out/bad.txt" 2>&1 || rc=$?
[ "$rc" != 0 ] && grep -q "PDSD_PROFILE='five': expected <first step>:<steps>" "$out/bad.txt" \
  || { echo "a malformed PDSD_PROFILE was not refused by name (exit $rc)"; tail "$out/bad.txt"; exit 1; }
echo "PDSD_PROFILE=2:2: a Chrome trace and an operator table per rank; PDSD_PROFILE=five refused by name"
