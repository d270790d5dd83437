# Shared by the multi-GPU benchmarks (sharded_throughput, eight_gpu): one training run per "row",
# with peak GPU memory sampled and the run's figures appended as one JSON line. Source it, then set
#   repo, out, steps, data (a LLaMA-Factory data dir with dataset synthetic_sft)
# (and optionally rows, a JSON-lines file of rows already measured, which are then skipped)
# and call   row MODEL_DIR_NAME NODES NPROC_PER_NODE STAGE METHOD [key=value ...]
# NODES=2 runs two pdsd-launch agents on this host standing in for two nodes, each with its own half
# of the GPUs (CUDA_VISIBLE_DEVICES), through one rendezvous endpoint.
# shellcheck shell=bash

gpus=$(nvidia-smi -L | wc -l)
export NCCL_NVLS_ENABLE=0  # NVLink multicast stays off on the lent machines

ensure_shapes() {  # out with_7b (0|1): the 0.5B shape and its data (and the 7B shape) under out, unless there
  local dir=$1 with_7b=$2
  # A second call on the same machine reuses them (the 7B shape takes minutes to write).
  if [ ! -f "$dir/data/dataset_info.json" ] || [ ! -d "$dir/qwen2.5-0.5b-shape" ]; then
    python3 "$repo/bench/sft_throughput/make_model_and_data.py" "$dir" 2000 > "$dir/make.log" 2>&1
  fi
  if [ "$with_7b" = 1 ] && [ ! -d "$dir/qwen2.5-7b-shape" ]; then
    python3 "$repo/bench/sharded_throughput/make_shape.py" "$dir/qwen2.5-7b-shape" 7b >> "$dir/make.log" 2>&1
  fi
}

peak_of() {  # log command...: runs it while sampling GPU memory; echoes the peak MiB on any one GPU (-1: failed)
  local log=$1; shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$log.mem" &
  local sampler=$! rc=0
  "$@" > "$log" 2>&1 || rc=$?
  kill $sampler; wait $sampler 2>/dev/null || true
  if [ $rc -ne 0 ]; then echo "FAILED ($rc): $*" >&2; grep -E "error|Error|fatal|out of memory" "$log" | head -5 >&2; echo -1; return 0; fi
  awk 'BEGIN{m=0} {if ($1>m) m=$1} END{print m}' "$log.mem"
}

two_agents() {  # nproc job...: two agents on this host as two nodes, GPUs split between them
  local nproc=$1; shift
  local port; port=$(python3 "$repo/tests/e2e/free_port.py")
  local first second rc=0
  first=$(seq -s, 0 $((nproc - 1))); second=$(seq -s, "$nproc" $((2 * nproc - 1)))
  CUDA_VISIBLE_DEVICES=$first "$repo/build-gpu/bin/pdsd-launch" --nnodes 2 --nproc "$nproc" --node-rank 0 \
    --rdzv-endpoint "127.0.0.1:$port" "$@" &
  local agent0=$!
  sleep 0.5
  CUDA_VISIBLE_DEVICES=$second "$repo/build-gpu/bin/pdsd-launch" --nnodes 2 --nproc "$nproc" --node-rank 1 \
    --rdzv-endpoint "127.0.0.1:$port" "$@" 2>&1 | sed 's/^/[node 1] /' || rc=$?
  wait $agent0 || rc=$?
  return $rc
}

row() {  # model nodes nproc stage method [key=value ...]   (MICRO_BATCH: samples per micro-batch, 4 unless set)
  local model=$1 nodes=$2 nproc=$3 stage=$4 method=$5; shift 5
  local bs=${MICRO_BATCH:-4}
  local world=$((nodes * nproc)) name="$model-${nodes}x${nproc}gpu-z$stage-$method${MICRO_BATCH:+-bs$bs}"
  [ "$world" -gt "$gpus" ] && return 0
  # With `rows` set (a JSON-lines file), a row already measured there is not measured again (with
  # REPEAT set, that repeat of it).
  [ -n "${rows:-}" ] && [ -f "$rows" ] && grep "\"row\": \"$name\"" "$rows" | grep -q "\"repeat\": ${REPEAT:-1}[,}]" && return 0
  local extra=(finetuning_type=$method "$@")
  [ "$method" = lora ] && extra+=(lora_target=q_proj,v_proj lora_rank=8 lora_alpha=16)
  # The same job on any number of GPUs: 32 samples per optimizer step in all (8 micro-batches of 4,
  # or 2 of 16: gradient_accumulation_steps 32 / (micro-batch × world)), so every row trains on the
  # very same samples, step by step, and scaling compares like with like (lengths vary a lot from
  # sample to sample).
  local ga=$(( bs * world >= 32 ? 1 : 32 / (bs * world) ))
  local job=(configs/sft.yaml "model_name_or_path=$out/$model" "dataset_dir=$data" dataset=synthetic_sft template=qwen
             cutoff_len=1024 per_device_train_batch_size=$bs gradient_accumulation_steps=$ga bf16=true
             gradient_checkpointing=false "max_steps=$steps" logging_steps=1 learning_rate=1e-5 val_size=0
             save_steps=100000 zero_stage="$stage" "output_dir=$out/$name" overwrite_output_dir=true "${extra[@]}")
  local mib
  if [ "$nodes" = 1 ]; then
    mib=$(peak_of "$out/$name.log" "$repo/build-gpu/bin/pdsd-launch" --nproc "$nproc" --standalone "${job[@]}")
  else
    mib=$(peak_of "$out/$name.log" two_agents "$nproc" "${job[@]}")
  fi
  python3 "$repo/bench/lib/row_figures.py" "$out/$name" "$out/$name.log" "$name" "$mib" "$world" "${REPEAT:-1}"
  # The exported model is not a figure; a 7B export is 15 GB of disk that later rows need.
  rm -f "$out/$name"/*.safetensors
}
