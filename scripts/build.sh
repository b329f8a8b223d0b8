#!/usr/bin/env bash
# Configures and builds kdtrain (Release) into build/, quietly; prints the compiler's
# output and fails if the build fails. Usage: scripts/build.sh [cmake args...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release "$@" && cmake --build "$root/build" -j "$(nproc)"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "build.sh: the build failed" >&2
  exit 1
fi
