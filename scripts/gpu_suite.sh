#!/usr/bin/env bash
# Builds pdsd with CUDA + NCCL and runs the whole suite on the lent GPU machine (docs/gpu-machine.md).
#
# Run it there through the device tool, carrying the gRPC/prometheus-cpp packages the machine lacks:
#   scripts/fetch_gpu_deps.sh                          # here, once: fills .gpu-deps/ (git-ignored)
#   device run: bash scripts/gpu_suite.sh   carry: [".gpu-deps"]
# It uses the machine's own torch (python3 → /opt/torch/.venv), CUDA 13 and NCCL, leaves logs under
# $OUT (or out/gpu), and prints a short table last.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
out=${OUT:-$repo/out/gpu}
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0  # NVLink multicast stays off on the lent machines
t0=$SECONDS

[ -f .gpu-deps/env.sh ] || { echo "gpu_suite: .gpu-deps/ missing: run scripts/fetch_gpu_deps.sh here and carry .gpu-deps"; exit 2; }
# shellcheck disable=SC1091
source .gpu-deps/env.sh
python=$(command -v python3)
torch_prefix=$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)')
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpus.txt"

build=build-gpu
set -o pipefail
# The system g++ (shared libstdc++), not a private GCC with only libstdc++.a that may come first in
# PATH there: see cmake/Dependencies.cmake on libtorch's exported std:: symbols.
cxx=${CXX_FOR_PDSD:-/usr/bin/g++}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPDSD_CUDA=ON "-DCMAKE_CXX_COMPILER=$cxx" \
  "-DCMAKE_PREFIX_PATH=$torch_prefix;$PDSD_GPU_DEPS_PREFIX" "-DPDSD_PYTHON=$python" > "$out/configure.log" 2>&1 \
  || { tail -40 "$out/configure.log"; exit 1; }
t_build=$SECONDS
# PDSD_BUILD_TARGETS narrows the build (e.g. "pdsd-launch pdsd-worker test_cuda_smoke") for a short call.
# shellcheck disable=SC2086
cmake --build "$build" -j "$(nproc)" ${PDSD_BUILD_TARGETS:+--target $PDSD_BUILD_TARGETS} > "$out/build.log" 2>&1 || { grep -E "error|FAILED" -A5 "$out/build.log" | head -60; exit 1; }
build_s=$((SECONDS - t_build))

t_test=$SECONDS
rc=0
# PDSD_CTEST_ARGS narrows the run (e.g. "-R Nccl") when a call only needs part of the suite.
# shellcheck disable=SC2086
ctest --test-dir "$build" --output-on-failure -j 8 ${PDSD_CTEST_ARGS:-} > "$out/ctest.log" 2>&1 || rc=$?
test_s=$((SECONDS - t_test))
grep -E "Failed|\*\*\*|tests passed" "$out/ctest.log" | tail -15 || true
# The GPU smoke test prints what it saw; keep it visible in the table.
nccl_line=$("$build/tests/test_cuda_smoke" --gtest_filter='*Nccl*' 2>&1 | grep "NCCL version" || echo "test_cuda_smoke: no NCCL line")
protobuf_ok=$("$build/tests/test_torch_grpc_link" > "$out/link.log" 2>&1 && echo pass || echo FAIL)
# The shipped job on the GPU in bf16 (tiny model: proves the device path, says nothing about speed).
gpu_job=$("$build/bin/pdsd-launch" --standalone --nproc 1 configs/sft.yaml bf16=true "output_dir=$out/gpu-sft" \
            overwrite_output_dir=true > "$out/gpu-sft.log" 2>&1 && grep -o "device [^;]*;" "$out/gpu-sft.log" | head -1 && \
          grep -o "loss [0-9.]* -> [0-9.]*" "$out/gpu-sft.log" | tail -1 || echo "FAIL (see gpu-sft.log)")

printf '\n%-34s %s\n' "gpu suite" "result"
printf '%-34s %s\n' "machine" "$(head -1 "$out/gpus.txt")"
printf '%-34s %s\n' "build (s, $(nproc) cores)" "$build_s"
printf '%-34s %s\n' "ctest (s)" "$test_s"
printf '%-34s %s\n' "ctest summary" "$(grep -E 'tests passed' "$out/ctest.log" | tail -1)"
printf '%-34s %s\n' "libtorch + gRPC/protobuf binary" "$protobuf_ok"
printf '%-34s %s\n' "cuda smoke" "$nccl_line"
printf '%-34s %s\n' "sft job on GPU (bf16)" "$(echo $gpu_job)"
printf '%-34s %s\n' "total (s)" "$((SECONDS - t0))"
exit $rc
