#!/usr/bin/env bash
# Checkpoint save and load throughput for a Qwen2.5-7B-shaped model (full SFT, ZeRO-3 on 2 GPUs: each
# rank writes its fp32 master and AdamW shards, 12 bytes per parameter in all) against a plain
# sequential write (dd, fsync) and read of the same bytes per rank, in parallel, on the same disk.
# Both reads come right after the writes, so both are served alike (by the page cache where it holds
# them). Prints a table last.
# Usage (GPU machine with 2 GPUs, after scripts/gpu_suite.sh built build-gpu/): bench/checkpoint_throughput/run.sh OUT
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${1:-$repo/out/checkpoint-bench}
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0
[ -d "$out/qwen2.5-7b-shape" ] || python3 "$repo/bench/sharded_throughput/make_shape.py" "$out/qwen2.5-7b-shape" 7b > "$out/make.log" 2>&1
[ -f "$out/data/dataset_info.json" ] || python3 "$repo/bench/sft_throughput/make_model_and_data.py" "$out/small" 200 > "$out/make-data.log" 2>&1
data=$out/data; [ -d "$data" ] || data=$out/small/data
job=(configs/sft.yaml "model_name_or_path=$out/qwen2.5-7b-shape" "dataset_dir=$data" dataset=synthetic_sft template=qwen
     cutoff_len=512 per_device_train_batch_size=1 gradient_accumulation_steps=1 bf16=true zero_stage=3 val_size=0
     logging_steps=1 save_steps=1 save_total_limit=1 "output_dir=$out/run")
launch=("$repo/build-gpu/bin/pdsd-launch" --nproc 2 --standalone)
# A job runs until its log shows what is measured here, then its process group is killed: the final
# export of a 7B model (minutes, 15 GB of disk) is no part of the figure. Every wait has a limit.
until_logged() {  # log pattern count limit_s job-args...
  local log=$1 pattern=$2 count=$3 limit=$4; shift 4
  setsid "${launch[@]}" "$@" > "$log" 2>&1 &
  local pid=$! waited=0
  while [ "$(grep -cE "$pattern" "$log" || true)" -lt "$count" ]; do
    if ! kill -0 $pid 2>/dev/null; then wait $pid || true; echo "job ended before logging '$pattern':"; tail -20 "$log"; return 1; fi
    [ $waited -ge "$limit" ] && { kill -9 -- -$pid; echo "no '$pattern' in $log within ${limit}s"; tail -20 "$log"; return 1; }
    sleep 1; waited=$((waited + 1))
  done
  kill -9 -- -$pid 2>/dev/null || true; wait $pid 2>/dev/null || true
}
# STAGE=save or STAGE=load runs one half (two device calls); unset runs both.
if [ "${STAGE:-save}" = save ]; then
  rm -rf "$out/run"
  until_logged "$out/save.log" "saved .*checkpoint-1: " 1 540 "${job[@]}" max_steps=2 overwrite_output_dir=true
fi
[ "${STAGE:-load}" = save ] && exit 0
until_logged "$out/load.log" "loaded .* GB of state" 2 540 "${job[@]}" max_steps=3 save_steps=1000 \
  resume_from_checkpoint="$out/run/checkpoint-1" overwrite_output_dir=false
ckpt=$out/run/checkpoint-1
sizes=()
for r in 0 1; do sizes+=("$(du -cb "$ckpt"/*rank"$r"* "$ckpt"/*_"$r".* 2>/dev/null | tail -1 | cut -f1)"); done
rm -rf "$out/run"  # room for the plain files
plain() {  # write|read rank bytes
  local f="$out/plain-$2.bin" mib=$(( $3 / 1048576 ))
  if [ "$1" = write ]; then dd if=/dev/zero of="$f" bs=1M count="$mib" conv=fsync status=none
  else dd if="$f" of=/dev/null bs=1M status=none; fi
}
t0=$(date +%s.%N); plain write 0 "${sizes[0]}" & plain write 1 "${sizes[1]}" & wait; t1=$(date +%s.%N)
plain read 0 "${sizes[0]}" & plain read 1 "${sizes[1]}" & wait; t2=$(date +%s.%N)
rm -f "$out"/plain-*.bin
python3 - "$out/save.log" "$out/load.log" "${sizes[0]}" "${sizes[1]}" "$t0" "$t1" "$t2" <<'PY'
import re, sys
save_log, load_log = open(sys.argv[1]).read(), open(sys.argv[2]).read()
b0, b1, t0, t1, t2 = int(sys.argv[3]), int(sys.argv[4]), *map(float, sys.argv[5:8])
m = re.search(r"saved \S+: ([\d.e+]+) GB from 2 rank\(s\) in ([\d.e+]+) s", save_log)
save_gb, save_s = float(m.group(1)), float(m.group(2))
loads = [(float(g), float(s)) for g, s in re.findall(r"loaded ([\d.e+]+) GB of state from \S+ in ([\d.e+]+) s", load_log)]
load_gb, load_s = sum(g for g, _ in loads), max(s for _, s in loads)  # ranks load in parallel
plain_gb = (b0 + b1) / 1e9
w, r = plain_gb / (t1 - t0), plain_gb / (t2 - t1)
print(f"\ncheckpoint of a 7B-shaped model, full SFT, ZeRO-3 on 2 GPUs ({save_gb:.1f} GB in all)")
print(f"{'':10} {'pdsd GB/s':>10} {'plain GB/s':>11} {'ratio':>7}")
print(f"{'save':10} {save_gb / save_s:10.2f} {w:11.2f} {100 * save_gb / save_s / w:6.0f}%")
print(f"{'load':10} {load_gb / load_s:10.2f} {r:11.2f} {100 * load_gb / load_s / r:6.0f}%")
v = re.search(r"validated \S+ \(sizes and CRC-32 of every file, \d+ rank\(s\) in parallel\) in ([\d.e+]+) s", load_log)
if v:
    print(f"{'validate':10} {save_gb / float(v.group(1)):10.2f} {r:11.2f} {100 * save_gb / float(v.group(1)) / r:6.0f}%"
          "   (rank 0 reads every file once before a resume)")
PY
