#!/usr/bin/env bash
# One idempotent setup step shared by the README's two commands:
#   1. Debian packages (pinned to their upstream version) — compilers, gRPC, protobuf, yaml-cpp, ...
#   2. a Python venv at .venv with the pinned packages of scripts/python-requirements.txt
#      (libtorch comes from the torch wheel; its share/cmake is the CMake prefix)
#   3. a CMake + Ninja build in build/
# Each step is skipped when it is already done, so running it again costs seconds.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
say() { printf '[setup] %s\n' "$*"; }
t0=$SECONDS

# --- 1. Debian packages -------------------------------------------------------------------------
apt_pkgs=(
  "g++=4:12.2.*" "cmake=3.25.*" "ninja-build=1.11.*" "pkg-config=1.8.*" "ccache=4.*"
  "python3-venv=3.11.*" "git=1:2.39.*"
  "libgrpc++-dev=1.51.*" "protobuf-compiler-grpc=1.51.*" "libprotobuf-dev=3.21.12-*" "protobuf-compiler=3.21.12-*"
  "libyaml-cpp-dev=0.7.0*" "prometheus-cpp-dev=1.0.1-*" "nlohmann-json3-dev=3.11.2-*" "libcli11-dev=2.1.2*"
  "libspdlog-dev=1:1.10.0*" "libfmt-dev=9.1.0*" "libgtest-dev=1.12.1-*" "libgmock-dev=1.12.1-*"
  "libpcre2-dev=10.42-*" "zlib1g-dev=1:1.2.13*" "libsentencepiece-dev=0.1.97-*" "libgloo-dev=0.0~git20220518*" "openssl=3.0.*"
)
missing=()
for spec in "${apt_pkgs[@]}"; do
  name=${spec%%=*}
  dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q "install ok installed" || missing+=("$spec")
done
if ((${#missing[@]})); then
  sudo_cmd=(); [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
  say "installing Debian packages: ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- 2. Python venv -----------------------------------------------------------------------------
req=scripts/python-requirements.txt
stamp=.venv/.pdsd-requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "creating .venv with the pinned Python packages (torch wheel ~0.5 GB, no CUDA runtime wheels)"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -r "$req"
  # `import torch` needs the CUDA runtime libraries that libtorch_cuda.so links. The machine's CUDA
  # toolkit supplies most; where it does not, fall back to the CUDA wheels torch itself pins.
  if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
    say "no usable CUDA toolkit libraries found: installing the CUDA runtime wheels torch declares"
    .venv/bin/pip install -q --disable-pip-version-check "torch==2.11.0"
  fi
  .venv/bin/python -c 'import torch, transformers, peft, tokenizers' 
  echo "$want" > "$stamp"
fi
torch_prefix=$(.venv/bin/python -c 'import torch; print(torch.utils.cmake_prefix_path)')

# --- 3. Build -----------------------------------------------------------------------------------
cmake_args=(-S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "-DCMAKE_PREFIX_PATH=$torch_prefix"
            "-DPDSD_PYTHON=$repo/.venv/bin/python")
command -v ccache >/dev/null && cmake_args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
if [ ! -f build/build.ninja ]; then
  say "configuring (CMake prefix for libtorch: $torch_prefix)"
  cmake "${cmake_args[@]}" ${PDSD_CMAKE_ARGS:-} >/dev/null
fi
say "building (jobs: ${PDSD_BUILD_JOBS:-$(nproc)})"
cmake --build build -j "${PDSD_BUILD_JOBS:-$(nproc)}"
say "ready in $((SECONDS - t0)) s"
