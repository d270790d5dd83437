#!/usr/bin/env bash
# The README's first command end to end: pdsd-launch runs 2 workers (data parallel over Gloo) on the
# shipped tiny model and data with configs/sft.yaml. The loss must fall, and the exported model dir
# must load in transformers and score held-out-style text better than the base model does.
set -euo pipefail
bin=$1
python=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$bin/pdsd-launch" --standalone --nproc 2 --log-dir "$out/logs" configs/sft.yaml "output_dir=$out/run" > "$out/console.txt" 2>&1 \
  || { tail -40 "$out/console.txt"; echo "pdsd-launch failed"; exit 1; }
"$python" - "$out/run" <<'PY'
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
run = sys.argv[1]
res = json.load(open(f"{run}/all_results.json"))
log = [json.loads(l) for l in open(f"{run}/trainer_log.jsonl")]
assert res["world_size"] == 2, res
assert log and log[-1]["step"] == res["global_step"], "trainer_log.jsonl does not reach the last step"
for key in ("step", "loss", "lr", "grad_norm", "tokens", "tokens_per_s", "elapsed"):
    assert key in log[0], f"trainer_log.jsonl lacks {key}"
print(f"pdsd: loss {res['train_first_loss']:.4f} -> {res['train_final_loss']:.4f} over {res['global_step']} steps "
      f"(mean {res['train_loss']:.4f})")
assert res["train_final_loss"] < 0.8 * res["train_first_loss"], "the loss did not fall"
tok = AutoTokenizer.from_pretrained(run)
msgs = [{"role": "user", "content": "What is 12 + 30?"}, {"role": "assistant", "content": "12 + 30 = 42."}]
ids = tok.apply_chat_template(msgs, tokenize=True, return_tensors="pt", return_dict=True)["input_ids"]
def loss_of(path):
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    with torch.no_grad():
        return float(model(input_ids=ids, labels=ids).loss)
base, tuned = loss_of("examples/tiny-qwen2"), loss_of(run)
print(f"transformers on an unseen chat: base model loss {base:.4f}, pdsd-trained model loss {tuned:.4f}")
assert tuned < base, "the trained model is not better than the base model"
PY
