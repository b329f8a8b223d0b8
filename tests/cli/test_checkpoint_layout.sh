#!/usr/bin/env bash
# A checkpoint written collectively by 2 ranks, read without kdtrain:
# - scripts/read_checkpoint.py (h5py, numpy, zlib) reads it, checks every dataset against the
#   manifest with its own CRC-32, and agrees with `kdtrain inspect` on every tensor group;
#   a byte flipped in the config text makes it name the dataset and exit 1;
# - h5dump lists the layout docs/checkpoint-format.md documents: root attributes, the text
#   datasets, provenance/state attributes, tensor groups of contiguous float32 datasets
#   (page-aligned where a page or more), /ranks/data_rng [2, 2] int64 and the manifest.
# Usage: test_checkpoint_layout.sh <kdtrain binary> <repo root> <mpirun>
set -u
bin=$1
root=$2
mpirun=$3
source "$(dirname "$0")/lib.sh"
use_mpi
py=/usr/bin/python3
command -v h5dump >/dev/null || { echo "SKIP: h5dump not installed (Debian: hdf5-tools; scripts/test.sh installs it)"; exit 77; }
"$py" -c 'import h5py' 2>/dev/null || { echo "SKIP: /usr/bin/python3 without h5py (Debian: python3-h5py)"; exit 77; }

run_np 2 distill --config "$root/configs/demo-synthetic.yaml" --set distill.teacher_pretrain_steps=10 \
  --set train.steps=4 --set optim.warmup_steps=1 --set train.threads=1 --set run.dir="$tmp/runs" --set run.name=two \
  >"$tmp/run.log" 2>&1 || { fail "2-rank run"; tail -5 "$tmp/run.log"; }
ckpt="$tmp/runs/two/checkpoints/step-00000004.h5"

# the independent reader
if "$py" "$root/scripts/read_checkpoint.py" "$ckpt" --tensor model/model.norm.weight >"$tmp/py.out" 2>&1 \
   && grep -q "manifest: every dataset's size and CRC-32 match" "$tmp/py.out" \
   && grep -q "state step: 4" "$tmp/py.out" && grep -q "ranks/data_rng: written by 2 ranks" "$tmp/py.out"; then
  ok "read_checkpoint.py: $(grep -c . "$tmp/py.out") lines, manifest verified by zlib's CRC-32"
else
  fail "read_checkpoint.py"; cat "$tmp/py.out"
fi
"$bin" inspect "$ckpt" >"$tmp/inspect.out" 2>&1 || fail "kdtrain inspect"
groups_py=$(grep "^tensors/" "$tmp/py.out" | sort)
groups_kd=$(grep "^tensors/" "$tmp/inspect.out" | sort)
[ -n "$groups_py" ] && [ "$groups_py" = "$groups_kd" ] \
  && ok "the reader and kdtrain inspect agree: $(echo "$groups_py" | tr '\n' ';' | cut -c1-150)" \
  || { fail "groups differ"; echo "py: $groups_py"; echo "kd: $groups_kd"; }
cp "$ckpt" "$tmp/flip.h5"
off=$(grep -abo "teacher_pretrain_steps" "$tmp/flip.h5" | head -1 | cut -d: -f1)
printf 'X' | dd of="$tmp/flip.h5" bs=1 seek="$off" conv=notrunc status=none
"$py" "$root/scripts/read_checkpoint.py" "$tmp/flip.h5" >/dev/null 2>"$tmp/flip.err"
rc=$?
[ "$rc" = 1 ] && grep -q "damaged: config: .* CRC-32" "$tmp/flip.err" \
  && ok "a flipped byte in the config text: exit 1, $(cut -c1-120 "$tmp/flip.err" | sed "s|$tmp/||")" \
  || { fail "flipped config byte: rc $rc"; cat "$tmp/flip.err"; }

# h5dump: the documented layout
h5dump -H -p "$ckpt" >"$tmp/h5dump.txt" 2>&1 || fail "h5dump"
for want in 'ATTRIBUTE "format"' 'ATTRIBUTE "format_version"' 'ATTRIBUTE "kind"' 'DATASET "config"' \
            'DATASET "metrics"' 'DATASET "manifest"' 'GROUP "provenance"' 'GROUP "state"' 'ATTRIBUTE "data_cursor"' \
            'ATTRIBUTE "blas_core"' 'GROUP "tensors"' 'GROUP "model"' 'GROUP "adam_m"' 'GROUP "adam_v"' \
            'GROUP "teacher"' 'GROUP "ranks"' 'DATASET "data_rng"' 'DATASET "model.embed_tokens.weight"' \
            'CONTIGUOUS' 'H5T_IEEE_F32LE' 'H5T_STD_I64LE' 'CSET H5T_CSET_UTF8'; do
  grep -qF "$want" "$tmp/h5dump.txt" || fail "h5dump does not list $want"
done
grep -A3 'DATASET "data_rng"' "$tmp/h5dump.txt" | grep -q 'SIMPLE { ( 2, 2 ) / ( 2, 2 ) }' \
  || fail "h5dump: /ranks/data_rng is not [2, 2]"
# every tensor contiguous and unfiltered; those of a page or more start on a page
n_tensors=$(h5dump -n "$ckpt" | grep -c 'dataset    /tensors/')
n_contiguous=$(grep -c '^ *CONTIGUOUS' "$tmp/h5dump.txt")
n_filtered=$(grep -c 'CHECKSUM FLETCHER32\|COMPRESSION' "$tmp/h5dump.txt")
misaligned=$(awk '/SIZE [0-9]+/ { size = $2 } /OFFSET [0-9]+/ { if (size >= 4096 && $2 % 4096 != 0) n++ } END { print n + 0 }' \
             "$tmp/h5dump.txt")
[ "$n_contiguous" -ge "$n_tensors" ] && [ "$n_tensors" -gt 0 ] && [ "$n_filtered" = 0 ] && [ "$misaligned" = 0 ] \
  && ok "h5dump lists the documented layout; $n_tensors tensor datasets, contiguous, unfiltered, page-aligned" \
  || fail "h5dump: $n_contiguous contiguous, $n_filtered filtered, $misaligned misaligned for $n_tensors tensors"

[ "$fails" -eq 0 ] && echo "all checkpoint layout checks passed" || { echo "$fails failure(s)"; exit 1; }
