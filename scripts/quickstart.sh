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
report = json.load(open(os.path.join(run, "output", "worker_report.json")))
line = "=" * 72
print(f"\n{line}\n pdsd quickstart: summary\n{line}")
print(f" job          configs/sft.yaml (full SFT config) on examples/tiny-qwen2")
print(f" workers      {nproc} processes on CPU, started by pdsd-launch, all exited 0")
print(f" wall time    {t1 - t0:.2f} s")
print(f" model        {report['model_type']}: {report['parameters']:,} parameters in {report['tensors']} tensors "
      f"({report['weight_bytes']:,} bytes), loaded in {report['load_ms']:.1f} ms per rank")
print(f" what ran     {report['what_ran']}")
print(f" trained      {'yes' if report['trained'] else 'NO: the trainer is not built yet; no training step ran and no trained model was written'}")
print(f" written      {run}/output/worker_report.json, {run}/output/resolved_config.yaml")
print(f" logs         {run}/logs/attempt_0/rank_<N>.log")
print(line)
PY
