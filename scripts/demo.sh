#!/usr/bin/env bash
# The main job, end to end: train a teacher on a synthetic Markov-chain corpus, distill
# a smaller student from it, and report its held-out loss against the chain's entropy
# rate (the best any model can do). Real corpora come with `kdtrain prepare`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"
"$root/scripts/build.sh"
cd "$root"
exec ./build/kdtrain distill --config configs/demo-synthetic.yaml "$@"
