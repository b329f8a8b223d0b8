#!/usr/bin/env bash
# Every command that reads a checkpoint checks it against its manifest (issue 20): a config
# whose norm_eps was changed in the file, a tensor edited in place (HDF5 recomputes its
# Fletcher-32; the manifest's CRC is stale) and a layer grafted on are refused with exit 2
# naming the file and the dataset by eval, generate, ptq, export (h5, hf, gguf),
# train.init_from and distill's teacher, and a changed tokenizer by prepare --tokenizer;
# nothing is written. Needs h5py.
# Usage: test_verified_reads.sh <kdtrain binary> <repo root>
set -u
bin=$1
root=$2
source "$(dirname "$0")/lib.sh"
export OMP_NUM_THREADS=2
py=/usr/bin/python3
$py -c 'import h5py' 2>/dev/null || { echo "SKIP: /usr/bin/python3 has no h5py"; exit 77; }

prepare_corpus
train_tiny good "$tmp/prep" "vocab: 300, d_model: 16, n_layers: 1, n_heads: 2, n_kv_heads: 1, d_ff: 32" 2 16
good=$tmp/runs/good/checkpoints/step-00000002.h5
[ -f "$good" ] || { fail "no checkpoint to damage"; exit 1; }

# damage KIND OUT: a copy of the good checkpoint changed with h5py the way a user could.
damage() {
  cp "$good" "$2"
  $py - "$1" "$2" <<'PY'
import sys, h5py, numpy as np
kind, path = sys.argv[1], sys.argv[2]
with h5py.File(path, "r+") as f:
    if kind == "config":  # one character of norm_eps, the text's length unchanged
        ds = f["config"]
        text = ds[()].decode()
        import re
        new = re.sub(r"(norm_eps: [0-9.]*e-0)5", r"\g<1>4", text, count=1)
        assert new != text and len(new) == len(text), text
        dtype = ds.dtype
        del f["config"]
        f.create_dataset("config", data=np.array(new.encode(), dtype=dtype))
    elif kind == "tokenizer":  # one character of the tokenizer's JSON
        ds = f["tokenizer"]
        text = ds[()].decode()
        import re
        m = re.search(r"[0-9]", text[text.index("merges"):])  # a merge's first token id
        at = text.index("merges") + m.start()
        new = text[:at] + ("1" if text[at] != "1" else "2") + text[at + 1:]
        dtype = ds.dtype
        del f["tokenizer"]
        f.create_dataset("tokenizer", data=np.array(new.encode(), dtype=dtype))
    elif kind == "tensor":  # one element, in place
        f["tensors/model/model.norm.weight"][3] = 7.0
    elif kind == "extra":  # a layer the config does not describe, copied from layer 0
        f.copy("tensors/model/model.layers.0.mlp.up_proj.weight", "tensors/model/model.layers.1.mlp.up_proj.weight")
PY
}
damage config "$tmp/config.h5"
damage tensor "$tmp/tensor.h5"
damage extra "$tmp/extra.h5"
damage tokenizer "$tmp/tokenizer.h5"
expect 2 "dataset /tokenizer does not match the manifest" prepare "$root/tests/data" --tokenizer "$tmp/tokenizer.h5" --out "$tmp/p-tokenizer"

for bad in config tensor extra; do
  ck=$tmp/$bad.h5
  case $bad in
    config) what="dataset /config does not match the manifest" ;;
    tensor) what='tensor "model/model.norm.weight": bytes [0, 64) have CRC-32' ;;
    extra) what="tensors/model/model.layers.1.mlp.up_proj.weight is not in the checkpoint's manifest" ;;
  esac
  expect 2 "$what" eval "$ck" --data "$tmp/prep/val.bin"
  expect 2 "$what" generate "$ck" --prompt "The" --max-new-tokens 2
  expect 2 "$what" ptq "$ck" --out "$tmp/q-$bad.h5" --batches 1
  expect 2 "$what" export "$ck" --out "$tmp/e-$bad.h5" --compact
  expect 2 "$what" export "$ck" --format hf --out "$tmp/hf-$bad"
  expect 2 "$what" export "$ck" --format gguf --out "$tmp/g-$bad.gguf"
  expect 2 "$what" train --config "$tmp/good.yaml" --set run.name="init-$bad" --set train.init_from="$ck"
  cat >"$tmp/distill-$bad.yaml" <<YAML
model: {vocab: 300, d_model: 8, n_layers: 1, n_heads: 2, n_kv_heads: 1, d_ff: 16}
teacher: {checkpoint: $ck}
train: {steps: 1, batch_size: 2, seq_len: 16, threads: 2}
data: {kind: shards, train: $tmp/prep/train.bin}
run: {dir: $tmp/runs, name: distill-$bad}
YAML
  expect 2 "$what" distill --config "$tmp/distill-$bad.yaml"
done
# nothing was written by the refused commands
left=$(cd "$tmp" && ls -d q-* e-* hf-* g-* p-* runs/init-* runs/distill-* 2>/dev/null)
[ -z "$left" ] && ok "the refused commands left nothing behind" || fail "left behind: $left"
# the good checkpoint still reads
"$bin" eval "$good" --data "$tmp/prep/val.bin" >/dev/null 2>&1 && ok "the intact checkpoint evaluates" || fail "eval of the intact checkpoint"
[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
