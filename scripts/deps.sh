#!/usr/bin/env bash
# Installs kdtrain's Debian packages if any is missing (idempotent, quiet when all are
# present). Usage: scripts/deps.sh [extra packages...]
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libopenblas-openmp-dev   # the OpenMP build of OpenBLAS: one thread pool with our loops
  libyaml-cpp-dev libcli11-dev libfmt-dev nlohmann-json3-dev
  libhdf5-openmpi-dev      # parallel HDF5 (checkpoints); pulls in OpenMPI
  zlib1g-dev               # CRC-32 combination (crc32_combine) of the checkpoint manifest
  libisal-dev              # Intel ISA-L: the manifest's CRC-32 at ~25 GB/s a core (zlib's: ~4)
  libpcre2-dev             # Hugging Face tokenizers' pre-tokenizer patterns
  libgtest-dev
  "$@"
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
