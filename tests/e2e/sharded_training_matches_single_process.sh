#!/usr/bin/env bash
# Data parallelism and ZeRO change nothing but speed and memory. With the same global batch (world
# size × gradient_accumulation_steps × per-device batch = 8 samples per optimizer step), 2 and 4
# workers under DDP (zero_stage 0), ZeRO-1, ZeRO-2 and ZeRO-3 give the same loss at every one of 20
# steps and the same final weights as 1 process, within float32 tolerance — full fine-tuning and
# LoRA; DDP, ZeRO-1 and ZeRO-2 also with many small gradient buckets (all-reduced or reduce-scattered
# during backward, chunks cutting parameters between ranks); ZeRO-3 also with its layers gathered into
# fixed gather slots (zero3_gather_engine copy), with a layer kept whole between its runs
# (zero3_keep_gathered_mb), and with gradient checkpointing on (the layers recomputed in backward;
# every other run here has it off, so no layer is recomputed). Freeze tuning too (the last of the
# two layers trains, embeddings frozen): backward stops at the layer that trains, so under ZeRO-3
# only that layer runs for a backward, and the frozen weights come out bit for bit as they went in.
# And packing (several samples per row, attention kept inside each by segment): packed runs at 2 and
# 4 ranks under DDP, ZeRO-2 and ZeRO-3 equal one packed process.
# Memory per rank is read from
# all_results.json: optimizer state falls as 1/N under ZeRO-1/2/3, and the weights held at rest fall
# as 1/N under ZeRO-3.
set -euo pipefail
bin=$1
python=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# zero3_keep_gathered_mb=0: ZeRO-3 gathers every layer for every run (the default budget would keep
# the tiny model whole); the -keep runs set their own.
common=(max_steps=20 save_steps=1000 logging_steps=1 val_size=0 per_device_train_batch_size=2 gradient_checkpointing=false
        zero3_keep_gathered_mb=0)
run() {  # method (sft, lora, freeze, packed-sft, packed-lora) world stage [name-suffix key=value ...]
  local name="$1-$2-z$3${4:+-$4}" method=$1 world=$2 stage=$3
  shift 3; [ $# -gt 0 ] && shift
  local config=configs/$method.yaml
  [ "$method" = freeze ] && config=configs/sft.yaml && set -- finetuning_type=freeze freeze_trainable_layers=1 "$@"
  [[ "$method" == packed-* ]] && config=configs/${method#packed-}.yaml && set -- packing=true "$@"
  "$bin/pdsd-launch" --nproc "$world" --standalone "$config" "${common[@]}" \
    gradient_accumulation_steps=$((4 / world)) zero_stage="$stage" "output_dir=$out/$name" "$@" > "$out/$name.txt" 2>&1 \
    || { echo "$name failed:"; tail -30 "$out/$name.txt"; exit 1; }
}
for method in sft lora; do
  run $method 1 0
  run $method 1 3
  for world in 2 4; do
    for stage in 0 1 2 3; do run $method $world $stage; done
  done
  # Gradient buckets (ddp_bucket_cap_mb) at 50 KB: many buckets, reduced during backward.
  run $method 2 0 buckets ddp_bucket_cap_mb=0.05
  run $method 2 2 buckets ddp_bucket_cap_mb=0.05 zero2_local_gradients_mb=0
  # ZeRO-2 reducing at every micro-batch: the tiny model's gradients are below
  # zero2_local_gradients_mb, so the plain ZeRO-2 runs above reduce once per step.
  run $method 2 2 everymb zero2_local_gradients_mb=0
  run $method 4 1 buckets ddp_bucket_cap_mb=0.05
  # ZeRO-3's layers gathered into fixed gather slots (zero3_gather_engine copy; on the copy engines
  # where NCCL can): slots go round in a fixed order, and a slot still viewed when its turn comes
  # would stop the job.
  run $method 2 3 copy zero3_gather_engine=copy
  # ... and with one of the two layers (about 0.18 MiB) kept whole until the update changes it
  # (zero3_keep_gathered_mb): moved out of its slot once, the other layer still taking the slots.
  # With gradient_checkpointing false no layer is recomputed: each runs once, and (full SFT) its
  # gradient is reduce-scattered by a hook once autograd has accumulated it; a layer not kept gives
  # its memory back after its forward and is gathered again into it before its backward.
  run $method 2 3 keep zero3_gather_engine=copy zero3_keep_gathered_mb=0.2
  # With it on, every layer is recomputed in backward from weights gathered again.
  run $method 2 3 recompute gradient_checkpointing=true
done
run freeze 1 0
run freeze 1 3
for stage in 2 3; do run freeze 2 $stage; done
run freeze 2 3 recompute gradient_checkpointing=true
run freeze 1 0 recompute gradient_checkpointing=true
for method in packed-sft packed-lora; do
  run $method 1 0
  run $method 1 3
  for stage in 0 2 3; do run $method 2 $stage; done
  run $method 4 3
done
# Gradients reduced in bf16 (communication_data_type; the default over NCCL for bf16 weights): close
# to one process within bf16 rounding.
run sft 2 2 bf16comm communication_data_type=bf16
run sft 2 3 bf16comm communication_data_type=bf16
"$python" - "$out" <<'PY'
import json, sys
from safetensors.torch import load_file
out = sys.argv[1]
def results(run): return json.load(open(f"{out}/{run}/all_results.json"))
every = [(1, 3, "")] + [(w, z, "") for w in (2, 4) for z in (0, 1, 2, 3)] + [(2, 0, "-buckets"), (2, 2, "-buckets"), (4, 1, "-buckets"), (2, 2, "-everymb"), (2, 3, "-copy"), (2, 3, "-keep"), (2, 3, "-recompute")]
freeze = [(1, 3, ""), (2, 2, ""), (2, 3, ""), (2, 3, "-recompute"), (1, 0, "-recompute")]
packed = [(1, 3, ""), (2, 0, ""), (2, 2, ""), (2, 3, ""), (4, 3, "")]
base = load_file("examples/tiny-qwen2/model.safetensors")
for method, weights, runs in (("sft", "model.safetensors", every), ("lora", "adapter_model.safetensors", every),
                              ("freeze", "model.safetensors", freeze), ("packed-sft", "model.safetensors", packed),
                              ("packed-lora", "adapter_model.safetensors", packed)):
    ref = f"{method}-1-z0"
    one = [json.loads(l) for l in open(f"{out}/{ref}/trainer_log.jsonl")]
    w1 = load_file(f"{out}/{ref}/{weights}")
    state1 = results(ref)["optimizer_state_bytes_per_rank"]
    params1 = results(f"{method}-1-z3")["parameter_bytes_per_rank"]
    if method == "freeze":  # layer 1 trains; layer 0 and the embeddings come out as they went in
        frozen = [k for k in w1 if not k.startswith("model.layers.1.")]
        assert frozen and w1.keys() == base.keys(), sorted(w1)
        assert all(w1[k].equal(base[k].to(w1[k].dtype)) for k in frozen), "freeze: a frozen weight changed"
        assert any(not w1[k].equal(base[k].to(w1[k].dtype)) for k in w1 if k.startswith("model.layers.1.")), "freeze: layer 1 did not train"
    for world, stage, suffix in runs:
        run = f"{method}-{world}-z{stage}{suffix}"
        other = [json.loads(l) for l in open(f"{out}/{run}/trainer_log.jsonl")]
        assert len(one) == len(other) == 20, (run, len(one), len(other))
        worst = max(abs(a["loss"] - b["loss"]) / a["loss"] for a, b in zip(one, other))
        w = load_file(f"{out}/{run}/{weights}")
        assert w.keys() == w1.keys(), run
        if method == "freeze":
            assert all(w[k].equal(base[k].to(w[k].dtype)) for k in frozen), f"{run}: a frozen weight changed"
        werr = max(float((w1[k].float() - w[k].float()).abs().max() / w1[k].float().abs().max().clamp_min(1e-12)) for k in w1)
        r = results(run)
        state, params = r["optimizer_state_bytes_per_rank"], r["parameter_bytes_per_rank"]
        print(f"{method:4} world {world} zero_stage {stage}{suffix}: 20 steps vs 1 process: max relative loss difference "
              f"{worst:.1e}, max relative weight difference {werr:.1e}; per rank: optimizer state {state:,} B "
              f"(1 process {state1:,}), weights at rest {params:,} B")
        assert worst < 1e-5, f"{run}: losses differ from one process"
        # Adam divides by sqrt(v): where a gradient is near zero, rounding-level differences in the
        # summation order move a weight by up to ~lr, so weights get a looser bound than losses.
        assert werr < 2e-3, f"{run}: final weights differ from one process"
        if stage == 0:
            assert state == state1, f"{run}: replicated DDP keeps the whole optimizer state on every rank"
        else:
            slack = 64 * world * 40 * (8 if suffix else 1)  # padding to a multiple of N per bucket, step counters
            assert abs(state - state1 / world) <= slack, f"{run}: state per rank {state} is not 1/{world} of {state1}"
        if suffix in ("-copy", "-keep"):  # over NCCL (on the GPU machine) the copy engines must really be in use
            log = open(f"{out}/{run}.txt").read()
            on_copy_engines = "layer all-gathers run on the GPUs' copy engines" in log
            assert on_copy_engines == ("nccl: rank" in log), f"{run}: copy-engine gathers {on_copy_engines} over this backend"
        if suffix == "-keep":
            assert r["zero3_layers_kept"] == 1, f"{run}: {r['zero3_layers_kept']} layers kept whole, not 1"
        if stage == 3:  # without checkpointing every layer (2) ran once per micro-batch, never recomputed
            # (freeze: layer 0, below the layer that trains, runs without a graph: it has no backward)
            once = 0 if suffix == "-recompute" else (1 if method == "freeze" else 2) * 20 * (4 // world)
            assert r["zero3_layer_runs_without_recompute"] == once, \
                f"{run}: {r['zero3_layer_runs_without_recompute']} layer runs without recompute, not {once}"
        if stage == 2 and world == 2:
            once = "one reduce-scatter per step" in open(f"{out}/{run}.txt").read()
            assert once == (suffix == ""), f"{run}: reduced once per step: {once}"
        if stage == 3:
            assert abs(params - params1 / world) <= 64 * world * 40, \
                f"{run}: weights per rank {params} are not 1/{world} of {params1}"
# Packing did pack: a packed step's 8 rows hold several samples each.
first_step = lambda run: json.loads(open(f"{out}/{run}/trainer_log.jsonl").readline())["tokens"]
assert first_step("packed-sft-1-z0") > 1.5 * first_step("sft-1-z0"), (first_step("packed-sft-1-z0"), first_step("sft-1-z0"))
one = [json.loads(l) for l in open(f"{out}/sft-1-z0/trainer_log.jsonl")]
for stage in (2, 3):
    run = f"sft-2-z{stage}-bf16comm"
    other = [json.loads(l) for l in open(f"{out}/{run}/trainer_log.jsonl")]
    worst = max(abs(a["loss"] - b["loss"]) / a["loss"] for a, b in zip(one, other))
    print(f"sft  world 2 zero_stage {stage}, gradients reduced in bf16: max relative loss difference {worst:.1e}")
    assert len(other) == 20 and worst < 2e-2, f"{run}: bf16 reduction strays from one process"
    assert "gradients reduced in bf16" in open(f"{out}/{run}.txt").read(), f"{run}: the job did not reduce in bf16"
PY
