#!/usr/bin/env bash
# The one prepared check for a lent GPU machine (docs/gpu.md).
#
#   scripts/gpu-check.sh --dry-run   here (and in CI, which has no GPU): build the bundle,
#                                    gpu-bundle/, and check that it fits what may travel
#   scripts/gpu-check.sh --build     the same
#   scripts/gpu-check.sh --run [OUT] on the GPU machine, from the repository root with
#                                    gpu-bundle/ carried: run every CUDA test against the CPU
#                                    backend, then `kdtrain bench` on configs/bench-gpu.yaml
#                                    beside PyTorch (scripts/torch_gpu_ref.py); results to OUT
#                                    (default: $OUT, else gpu-check-out). GPU_CHECK_BENCH=0
#                                    skips the benchmark, GPU_CHECK_TEACHER=1 adds the teacher
#                                    forward's timing
#   scripts/gpu-check.sh --run-checkpoint [OUT]
#                                    on the lent machine, as a second call: the 2 GB checkpoint
#                                    benchmark on its CPU cores and disk (issue 26's stall)
#
# The GPU machine has the CUDA 13 driver and PyTorch's environment (cuBLAS, cuDNN, NCCL as
# pip packages) but none of MPI, HDF5, yaml-cpp or OpenBLAS, and at most 64 MiB travels with
# the working tree. So the bundle is one binary built here, the CUDA tests plus kdtrain's
# command line (`gpu_check_tests kdtrain ...`), with the CUDA runtime linked statically, and
# every shared library it needs but glibc/libstdc++ (OpenBLAS, MPI, HDF5, yaml-cpp, ...),
# xz-compressed; cuBLAS is taken from PyTorch's environment (or the toolkit) there, never carried.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:---dry-run}
bundle=$root/gpu-bundle
limit_mib=48  # of the 64 MiB that travel: the rest is the working tree

build_bundle() {
  "$root/scripts/deps.sh" >/dev/null
  command -v /usr/local/cuda/bin/nvcc >/dev/null || command -v nvcc >/dev/null \
    || { echo "gpu-check: no CUDA toolkit (nvcc) here: cannot build the bundle" >&2; exit 2; }
  # the test suite's own build tree (scripts/test.sh configures it the same way): only the
  # bundle's test files compile and the binary links; a second tree would compile everything again
  local bdir=$root/build
  [ -f "$bdir/CMakeCache.txt" ] || cmake -S "$root" -B "$bdir" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$bdir" --target gpu_check_tests -j "$(nproc)" >/dev/null \
    || { echo "gpu-check: could not build gpu_check_tests in $bdir (configured without the CUDA backend?)" >&2; exit 2; }
  rm -rf "$bundle"
  mkdir -p "$bundle/bin" "$bundle/lib"
  cp "$bdir/tests/gpu_check_tests" "$bundle/bin/"
  strip "$bundle/bin/"*
  # Every shared library the binary needs except the C/C++ runtime (glibc, libstdc++, libgcc:
  # the GPU machine's image has them) and cuBLAS and NCCL (taken from PyTorch's environment there):
  # MPI, HDF5 and yaml-cpp for kdtrain's CLI (MPI is never initialised without mpirun).
  ldd "$bundle/bin/"* | awk '/=> \// { print $3 }' | sort -u \
    | grep -vE '/(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s|libcublas[A-Za-z]*|libnccl)\.so' \
    | while read -r lib; do cp -L "$lib" "$bundle/lib/"; done
  if ldd "$bundle/bin/"* | grep -qE 'libcudart'; then
    echo "gpu-check: the bundle's binary links the CUDA runtime dynamically:" >&2
    ldd "$bundle/bin/"* | grep -E 'libcudart' >&2
    exit 1
  fi
  [ -f "$bundle/lib/libopenblas.so.0" ] || { echo "gpu-check: OpenBLAS did not go into the bundle" >&2; exit 1; }
  # what travels: the binary and its libraries, compressed
  tar -C "$bundle" -cf - bin lib | xz -T0 -6 > "$root/gpu-bundle.tar.xz.tmp"
  rm -rf "$bundle/bin" "$bundle/lib"
  mv "$root/gpu-bundle.tar.xz.tmp" "$bundle/bundle.tar.xz"
  local kib
  kib=$(du -sk "$bundle" | cut -f1)
  echo "gpu-check: bundle $bundle: $((kib / 1024)) MiB compressed ($(tar -tJf "$bundle/bundle.tar.xz" | grep -c /) files)"
  [ "$kib" -le $((limit_mib * 1024)) ] || { echo "gpu-check: the bundle exceeds ${limit_mib} MiB" >&2; exit 1; }
  echo "gpu-check: within the ${limit_mib} MiB limit; cuBLAS comes from the GPU machine"
}

# The bundle unpacked under TMPDIR; `bundle` then names it, and the loader finds its libraries
# and cuBLAS: PyTorch's pip packages (nvidia/*/lib), else the toolkit's.
unpack_bundle() {
  [ -f "$bundle/bundle.tar.xz" ] || { echo "gpu-check: no bundle at $bundle (build it with --build, carry gpu-bundle)" >&2; exit 2; }
  local unpacked=${TMPDIR:-/tmp}/kdtrain-gpu-bundle
  rm -rf "$unpacked" && mkdir -p "$unpacked"
  python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$bundle/bundle.tar.xz" "$unpacked"
  bundle=$unpacked
  local py_libs
  py_libs=$(python3 -c 'import glob, os, site; print(":".join(sorted(set(d for p in site.getsitepackages() for d in glob.glob(os.path.join(p, "nvidia", "*", "lib"))))))' 2>/dev/null || true)
  export LD_LIBRARY_PATH="$bundle/lib:${py_libs}:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
}

run_bundle() {
  local out=${1:-${OUT:-gpu-check-out}}
  mkdir -p "$out"
  unpack_bundle
  {
    echo "== machine"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
    echo "cuBLAS from: $(ldd "$bundle/bin/gpu_check_tests" | grep -E 'libcublas' | awk '{ print $3 }' | tr '\n' ' ')"
    echo "NCCL from: $(ldd "$bundle/bin/gpu_check_tests" | grep -E 'libnccl' | awk '{ print $3 }')"
    echo "== CUDA ops, the teacher forward and the whole training step against the CPU backend"
  } | tee "$out/gpu-check.txt"
  set +e
  "$bundle/bin/gpu_check_tests" --gtest_color=no 2>&1 | tee "$out/cuda_ops.txt" | tee -a "$out/gpu-check.txt"
  local rc=${PIPESTATUS[0]}
  set -e
  # on a GPU machine nothing may be skipped: a skip means the GPU was not usable
  if grep -q '^\[  SKIPPED \]' "$out/cuda_ops.txt"; then
    echo "gpu-check: tests were SKIPPED on the GPU machine (no usable GPU?)" | tee -a "$out/gpu-check.txt"
    rc=1
  fi
  echo "gpu-check: CUDA op tests exit $rc" | tee -a "$out/gpu-check.txt"
  log() { tee -a "$out/gpu-check.txt"; }
  torch_ref() {  # the PyTorch reference, its warnings dropped
    timeout "$1" python3 "$root/scripts/torch_gpu_ref.py" "${@:2}" 2>&1 | grep -v Warning | tee -a "$out/bench.txt" | log \
      || echo "gpu-check: the PyTorch reference ($2) failed or timed out" | log
  }
  if [ "${GPU_CHECK_BENCH:-1}" = 1 ]; then
    echo "== cuBLAS's bf16 GEMM peak (the MFU denominator)" | log
    torch_ref 60 peak
    local peak
    peak=$(grep -o 'bf16_peak_tflops=[0-9.]*' "$out/bench.txt" | tail -1 | cut -d= -f2)
    echo "== the KD step of configs/bench-gpu.yaml: kdtrain (CUDA backend, bf16 GEMMs), then PyTorch" | log
    timeout 300 "$bundle/bin/gpu_check_tests" kdtrain bench --config "$root/configs/bench-gpu.yaml" \
      --peak-gflops "$(python3 -c "print(float('${peak:-0}') * 1000)")" 2>&1 | tee -a "$out/bench.txt" | log \
      || echo "gpu-check: kdtrain bench failed or timed out" | log
    torch_ref 240 kd-step --peak-tflops "${peak:-0}"
  fi
  if [ "${GPU_CHECK_TEACHER:-0}" = 1 ]; then
    echo "== the teacher forward: kdtrain's CUDA backend, then PyTorch on the same shape" | log
    "$bundle/bin/gpu_check_tests" --bench-teacher 2>&1 | tee -a "$out/bench.txt" | log
    torch_ref 240 teacher
  fi
  return "$rc"
}

# The checkpoint benchmark of issue 26 on the lent machine's cores and disk (the training on
# the CPU, every core): the stall a 2 GB checkpoint causes, beside a bare write of the same
# bytes, and where this machine's kernel and host put the write's core time. On the VM of the
# project's CI the disk's emulation takes the training's cores (docs/checkpoint-format.md);
# this asks what a machine of the kind users run on does. PyTorch's torch.save/torch.load of
# the same state follow when PyYAML is there (scripts/torch_ckpt_ref.py reads the config).
run_checkpoint() {
  local out=${1:-${OUT:-gpu-check-out}}
  mkdir -p "$out"
  unpack_bundle
  local threads dir
  threads=$(nproc)
  # beside the working tree, on the machine's disk (/tmp may be memory: tmpfs takes no O_DIRECT
  # and would time RAM); the file system named in the output
  dir=$(mktemp -d "$root/.gpu-check-ckpt-XXXXXX")
  {
    echo "== checkpoint at ~2 GB (configs/bench-ckpt2g.yaml, student-only, $threads threads): kdtrain, then PyTorch"
    echo "written to $dir: $(df -hT "$dir" | tail -1)"
  } | tee -a "$out/gpu-check.txt"
  local rc=0
  timeout 400 "$bundle/bin/gpu_check_tests" kdtrain bench --config "$root/configs/bench-ckpt2g.yaml" --student-only \
    --checkpoint --checkpoint-dir "$dir/kdtrain" --threads "$threads" 2>&1 | tee "$out/ckpt2g.txt" \
    | grep -E '^(RESULT|checkpoint)' | tee -a "$out/gpu-check.txt" || rc=1
  if python3 -c 'import yaml, torch' 2>/dev/null; then
    OMP_NUM_THREADS=$threads timeout 300 python3 "$root/scripts/torch_ckpt_ref.py" --config "$root/configs/bench-ckpt2g.yaml" \
      --threads "$threads" --dir "$dir" 2>&1 | grep -v Warning | tee "$out/torch-ckpt2g.txt" | tee -a "$out/gpu-check.txt" || rc=1
  else
    echo "gpu-check: no PyYAML or torch in this python3: the PyTorch side of the checkpoint benchmark skipped" | tee -a "$out/gpu-check.txt"
  fi
  rm -rf "$dir"
  echo "gpu-check: checkpoint benchmark exit $rc" | tee -a "$out/gpu-check.txt"
  return "$rc"
}

case $mode in
  --dry-run|--build) build_bundle ;;
  --run) shift; run_bundle "$@" ;;
  --run-checkpoint) shift; run_checkpoint "$@" ;;
  *) echo "usage: $0 --dry-run | --build | --run [OUT] | --run-checkpoint [OUT]" >&2; exit 2 ;;
esac
