#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (GoogleTest under
# CTest), printing the time per CTest label. Exit status: CTest's.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# slurm*/munge: the local SLURM cluster of the `slurm` tests; hdf5-tools (h5dump) and
# python3-h5py/-torch/-matplotlib: the independent checkpoint checks and the plot test;
# python3-regex: the independent tokenizer reference (scripts/hf_tokenizer_ref.py)
"$root/scripts/deps.sh" slurmctld slurmd slurm-client munge hdf5-tools python3-h5py python3-torch python3-yaml python3-matplotlib python3-regex
# full build output on failure
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build" -j "$(nproc)"
cd "$root/build"
start=$(date +%s)
ctest --output-on-failure --timeout 900 "$@"
echo "test.sh: suite took $(( $(date +%s) - start )) s"
