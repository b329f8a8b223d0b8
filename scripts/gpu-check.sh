#!/usr/bin/env bash
# The one prepared check for a lent GPU machine (docs/gpu.md).
#
#   scripts/gpu-check.sh --dry-run   here (and in CI, which has no GPU): build the bundle,
#                                    gpu-bundle/, and check that it fits what may travel
#   scripts/gpu-check.sh --build     the same
#   scripts/gpu-check.sh --run [OUT] on the GPU machine, from the repository root with
#                                    gpu-bundle/ carried: run every CUDA test against the CPU
#                                    backend; results to OUT (default: $OUT, else gpu-check-out)
#
# The GPU machine has the CUDA 13 driver and PyTorch's environment (cuBLAS, cuDNN, NCCL as
# pip packages) but none of MPI, HDF5, yaml-cpp or OpenBLAS, and at most 64 MiB travels with
# the working tree. So the bundle holds the CUDA test binaries built here (the CUDA runtime
# linked statically, OpenBLAS statically, the CPU reference included) and the few shared
# libraries they need that such a machine lacks (libgfortran, libquadmath, libgomp, libfmt);
# cuBLAS is taken from PyTorch's environment (or the toolkit) there, never carried.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:---dry-run}
bundle=$root/gpu-bundle
limit_mib=48  # of the 64 MiB that travel: the rest is the working tree

build_bundle() {
  "$root/scripts/deps.sh" >/dev/null
  command -v /usr/local/cuda/bin/nvcc >/dev/null || command -v nvcc >/dev/null \
    || { echo "gpu-check: no CUDA toolkit (nvcc) here: cannot build the bundle" >&2; exit 2; }
  local bdir=$root/build-gpucheck
  local blas=/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.a
  cmake -S "$root" -B "$bdir" -DCMAKE_BUILD_TYPE=Release -DKDTRAIN_CUDA=ON -DKDTRAIN_OPENBLAS_LIB="$blas" \
    -DCMAKE_EXE_LINKER_FLAGS="-lgfortran" >/dev/null
  cmake --build "$bdir" --target gpu_check_tests -j "$(nproc)" >/dev/null
  rm -rf "$bundle"
  mkdir -p "$bundle/bin" "$bundle/lib"
  cp "$bdir/tests/gpu_check_tests" "$bundle/bin/"
  strip "$bundle/bin/"*
  # the shared libraries a GPU machine's image lacks; glibc, libstdc++ and the CUDA driver are there
  ldd "$bundle/bin/"* | awk '/=> \// { print $3 }' | sort -u \
    | grep -E 'lib(gfortran|quadmath|gomp|fmt)\.so' | while read -r lib; do cp -L "$lib" "$bundle/lib/"; done
  if ldd "$bundle/bin/"* | grep -qE 'libopenblas|libcudart|libhdf5|libmpi|libyaml'; then
    echo "gpu-check: the bundle's binary still needs a library the GPU machine lacks:" >&2
    ldd "$bundle/bin/"* | grep -E 'libopenblas|libcudart|libhdf5|libmpi|libyaml' >&2
    exit 1
  fi
  local kib
  kib=$(du -sk "$bundle" | cut -f1)
  echo "gpu-check: bundle $bundle: $((kib / 1024)) MiB ($(ls "$bundle/bin" | tr '\n' ' '); libs: $(ls "$bundle/lib" | tr '\n' ' '))"
  [ "$kib" -le $((limit_mib * 1024)) ] || { echo "gpu-check: the bundle exceeds ${limit_mib} MiB" >&2; exit 1; }
  echo "gpu-check: within the ${limit_mib} MiB limit; cuBLAS needed from the GPU machine: $(ldd "$bundle/bin/gpu_check_tests" | grep -oE 'libcublas[A-Za-z]*\.so\.[0-9]+' | sort -u | tr '\n' ' ')"
}

run_bundle() {
  local out=${1:-${OUT:-gpu-check-out}}
  mkdir -p "$out"
  [ -x "$bundle/bin/gpu_check_tests" ] || { echo "gpu-check: no bundle at $bundle (build it with --build, carry gpu-bundle)" >&2; exit 2; }
  # cuBLAS: PyTorch's pip packages (nvidia/*/lib), else the toolkit's
  local py_libs
  py_libs=$(python3 -c 'import glob, os, site; print(":".join(sorted(set(d for p in site.getsitepackages() for d in glob.glob(os.path.join(p, "nvidia", "*", "lib"))))))' 2>/dev/null || true)
  export LD_LIBRARY_PATH="$bundle/lib:${py_libs}:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
  {
    echo "== machine"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
    echo "cuBLAS from: $(ldd "$bundle/bin/gpu_check_tests" | grep -E 'libcublas' | awk '{ print $3 }' | tr '\n' ' ')"
    echo "== CUDA ops and the teacher forward against the CPU backend"
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
  if [ "${GPU_CHECK_BENCH:-1}" = 1 ]; then
    echo "== the teacher forward: kdtrain's CUDA backend, then PyTorch on the same shape" | tee -a "$out/gpu-check.txt"
    "$bundle/bin/gpu_check_tests" --bench-teacher 2>&1 | tee "$out/bench.txt" | tee -a "$out/gpu-check.txt"
    timeout 240 python3 "$root/scripts/torch_gpu_teacher_ref.py" 2>&1 | grep -v Warning | tee -a "$out/bench.txt" \
      | tee -a "$out/gpu-check.txt" || echo "gpu-check: the PyTorch reference failed or timed out" | tee -a "$out/gpu-check.txt"
  fi
  return "$rc"
}

case $mode in
  --dry-run|--build) build_bundle ;;
  --run) shift; run_bundle "$@" ;;
  *) echo "usage: $0 --dry-run | --build | --run [OUT]" >&2; exit 2 ;;
esac
