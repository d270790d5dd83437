#!/usr/bin/env bash
# The README's second command: set up (first time only), build, and run the whole test suite.
# Extra arguments go to ctest (e.g. -L unit, -R Config, -V).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bash scripts/setup.sh
ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"
