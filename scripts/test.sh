#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (GoogleTest under
# CTest), printing the time per CTest label. Exit status: CTest's.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# slurm*/munge: the local SLURM cluster of the `slurm` tests; hdf5-tools (h5dump) and
# python3-h5py/-torch/-matplotlib: the independent checkpoint checks and the plot test;
# python3-regex: the independent tokenizer reference (scripts/hf_tokenizer_ref.py);
# nodejs/npm: the GGUF reader @huggingface/gguf (scripts/gguf_check.mjs)
"$root/scripts/deps.sh" slurmctld slurmd slurm-client munge hdf5-tools python3-h5py python3-torch python3-yaml python3-matplotlib python3-regex
# (node and npm may come from another source than Debian: install Debian's only when absent)
command -v node >/dev/null || "$root/scripts/deps.sh" nodejs
command -v npm >/dev/null || "$root/scripts/deps.sh" npm
# full build output on failure
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build" -j "$(nproc)"
# npm packages of the interop checks, pinned: @huggingface/gguf reads the GGUF export back,
# node-llama-cpp runs it in llama.cpp. A registry out of reach makes those tests skip, saying so.
npm_dir=$root/build/npm
for pkg in @huggingface/gguf@0.4.6 node-llama-cpp@3.22.1; do
  [ -d "$npm_dir/node_modules/${pkg%@*}" ] && continue
  mkdir -p "$npm_dir"
  timeout 600 npm install --prefix "$npm_dir" --no-audit --no-fund --loglevel=error "$pkg" >/dev/null 2>&1 \
    || echo "test.sh: npm could not install $pkg; the tests that need it will skip"
done
cd "$root/build"
start=$(date +%s)
ctest --output-on-failure --timeout 900 "$@"
echo "test.sh: suite took $(( $(date +%s) - start )) s"
