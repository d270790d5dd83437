#!/usr/bin/env bash
# The README's first command: set up (first time only), then run the embedded default job —
# pdsd-launch with 2 worker processes on CPU, on the tiny Qwen2 model and dataset in examples/ —
# and print a one-screen summary of what ran and what it produced.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bash scripts/setup.sh
nproc=${PDSD_QUICKSTART_NPROC:-2}
run=out/quickstart
rm -rf "$run"
echo
echo "[quickstart] pdsd-launch --standalone --nproc $nproc --log-dir $run/logs configs/sft.yaml output_dir=$run/output"
t0=$(date +%s.%N)
build/bin/pdsd-launch --standalone --nproc "$nproc" --log-dir "$run/logs" configs/sft.yaml "output_dir=$run/output"
t1=$(date +%s.%N)
.venv/bin/python - "$run" "$nproc" "$t0" "$t1" <<'PY'
import json, os, sys
run, nproc, t0, t1 = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
out = os.path.join(run, "output")
res = json.load(open(os.path.join(out, "all_results.json")))
log = [json.loads(l) for l in open(os.path.join(out, "trainer_log.jsonl"))]
line = "=" * 76
print(f"\n{line}\n pdsd quickstart: summary\n{line}")
print(f" job          configs/sft.yaml: full SFT of examples/tiny-qwen2 on tiny_alpaca + tiny_sharegpt")
print(f" workers      {nproc} processes on CPU (data parallel over Gloo), started by pdsd-launch")
print(f" wall time    {t1 - t0:.1f} s (launch to exit); training {res['train_runtime']:.1f} s")
print(f" data         {res['train_samples']} training samples, {res.get('eval_samples', 0)} held out, "
      f"{res['skipped_records']} bad records skipped")
print(f" steps        {res['global_step']} optimizer steps ({res['epoch']:.1f} epochs), "
      f"{res['trainable_parameters']:,} trainable parameters")
print(f" loss         {res['train_first_loss']:.4f} at step 1 -> {res['train_final_loss']:.4f} at step {res['global_step']}"
      + (f"; eval loss {res['eval_loss']:.4f}" if 'eval_loss' in res else ""))
print(f" throughput   {res['train_tokens_per_second']:,.0f} tokens/s (all ranks, non-padding tokens)")
print(f" log          " + "  ".join(f"{r['step']}:{r['loss']:.3f}" for r in log[-6:]))
print(f" artifact     {out}/ (model.safetensors, config.json, tokenizer: loads with transformers)")
print(f" files        {out}/trainer_log.jsonl, all_results.json; logs in {run}/logs/attempt_0/")
print(line)
PY
