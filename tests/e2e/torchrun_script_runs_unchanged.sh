#!/usr/bin/env bash
# A PyTorch script written for torchrun (tests/peer/torchrun_allreduce.py: init_process_group("gloo")
# with env://, all_reduce) runs unchanged under pdsd-launch: on one node with --nproc 2, and on two
# agents on loopback as 2 nodes x 1 worker.
set -euo pipefail
bin=$1
python=$2
out=$(mktemp -d)
export PDSD_RUNTIME_DIR=$out/runtime PDSD_JOB_TOKEN=torchrun-test-token-$$
mkdir -m 700 "$PDSD_RUNTIME_DIR"
trap 'pkill -9 -f "torchrun_allreduce.py $out" 2>/dev/null || true; rm -rf "$out"' EXIT
script=tests/peer/torchrun_allreduce.py

"$bin/pdsd-launch" --standalone --nproc 2 -- "$python" "$script" "$out" > "$out/one.txt" 2>&1 || { cat "$out/one.txt"; exit 1; }
for r in 0 1; do
  grep -q "\[rank$r\]:rank $r/2 local $r/2 group 0 restart 0 all_reduce 3 expected 3" "$out/one.txt" || { cat "$out/one.txt"; exit 1; }
done

p=$("$python" tests/e2e/free_port.py)
for n in 0 1; do
  "$bin/pdsd-launch" --nnodes 2 --nproc 1 --node-rank $n --rdzv-endpoint "127.0.0.1:$p" -- "$python" "$script" "$out" \
    > "$out/node$n.txt" 2>&1 &
  eval "pid$n=\$!"
done
wait "$pid0" || { cat "$out/node0.txt"; exit 1; }
wait "$pid1" || { cat "$out/node1.txt"; exit 1; }
grep -q "\[rank0\]:rank 0/2 local 0/1 group 0 restart 0 all_reduce 3 expected 3" "$out/node0.txt" || { cat "$out/node0.txt"; exit 1; }
grep -q "\[rank1\]:rank 1/2 local 0/1 group 1 restart 0 all_reduce 3 expected 3" "$out/node1.txt" || { cat "$out/node1.txt"; exit 1; }
echo "torchrun script under pdsd-launch: all_reduce over Gloo correct on 1 node x 2 and 2 nodes x 1"
