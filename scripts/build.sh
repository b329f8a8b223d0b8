#!/usr/bin/env bash
# Configures and builds kdtrain (Release) into build/. Usage: scripts/build.sh [cmake args...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc)
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$root/build" -j "$jobs" 2>&1 | grep -E "error|warning|Error" || true
test -x "$root/build/kdtrain" || { echo "build.sh: build failed" >&2; exit 1; }
