#!/usr/bin/env bash
# The README's first command, end to end: pdsd-launch runs 2 workers on the shipped tiny model; every
# rank must report the same weight fingerprint, and it must equal what transformers computes from
# the same model dir (the peer reading the same safetensors).
set -euo pipefail
bin=$1
python=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$bin/pdsd-launch" --standalone --nproc 2 --log-dir "$out/logs" configs/sft.yaml "output_dir=$out/run" > "$out/console.txt" 2>&1 \
  || { cat "$out/console.txt"; echo "pdsd-launch failed"; exit 1; }
grep -q '"trained": false' "$out/run/worker_report.json"
ranks=$(grep -ho 'sum of squares [0-9.e+-]*' "$out"/logs/attempt_0/rank_*.log | sort -u | wc -l)
[ "$ranks" = 1 ] || { echo "ranks disagree on the weights:"; grep -h 'sum of squares' "$out"/logs/attempt_0/rank_*.log; exit 1; }
"$python" - "$out/run/worker_report.json" <<'PY'
import json, sys, torch
from transformers import AutoModelForCausalLM
report = json.load(open(sys.argv[1]))
model = AutoModelForCausalLM.from_pretrained("examples/tiny-qwen2", dtype=torch.float32)
params = dict(model.named_parameters())  # tied lm_head appears once
peer = sum(float(p.detach().double().square().sum()) for p in params.values())
n = sum(p.numel() for p in params.values())
ours = report["weights_sum_of_squares"]
print(f"parameters: pdsd {report['parameters']} transformers {n}; sum of squares: pdsd {ours!r} transformers {peer!r}")
assert report["parameters"] == n, "parameter counts differ"
assert abs(ours - peer) <= 1e-9 * abs(peer), "weights differ from what transformers loads"
PY
