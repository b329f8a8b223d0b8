#!/usr/bin/env bash
# kdtrain import-hf of tests/fixtures/hf_tiny (written by scripts/hf_llama_ref.py), then
# kdtrain export --format hf; the script's own safetensors parser and float64 Llama forward
# read the export back: the same tensors bit for bit, the reference logits. Bad input to
# import-hf exits 2 naming the key or file.
# Usage: test_hf_export.sh <kdtrain binary> <repo root>
set -u
bin=$1
root=$2
source "$(dirname "$0")/lib.sh"
/usr/bin/python3 -c 'import torch' 2>/dev/null || { echo "SKIP: python3-torch is not installed"; exit 77; }
fixture=$root/tests/fixtures/hf_tiny

for name in hf_tiny hf_llama3; do
  "$bin" import-hf "$root/tests/fixtures/$name" --out "$tmp/$name.h5" >"$tmp/out" 2>&1 \
    && ok "import-hf $name: $(sed -n 2p "$tmp/out")" || { fail "import-hf $name failed"; cat "$tmp/out"; }
  "$bin" export "$tmp/$name.h5" --format hf --out "$tmp/$name" >"$tmp/out" 2>&1 && ok "export --format hf $name" \
    || { fail "export --format hf $name failed"; cat "$tmp/out"; }
  /usr/bin/python3 "$root/scripts/hf_llama_ref.py" check-export "$tmp/$name" "$root/tests/fixtures/$name" >"$tmp/out" 2>&1 \
    && ok "$name: $(tail -1 "$tmp/out")" || { fail "the independent check of the $name export failed"; cat "$tmp/out"; }
done
cp -r "$tmp/hf_tiny" "$tmp/exported"
cp "$tmp/hf_tiny.h5" "$tmp/imported.h5"
expect 2 "already exists: give --overwrite" export "$tmp/imported.h5" --format hf --out "$tmp/exported"

cp -r "$fixture" "$tmp/bad"
/usr/bin/python3 - "$tmp/bad/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["rope_scaling"] = {"rope_type": "dynamic", "factor": 2.0}
json.dump(c, open(sys.argv[1], "w"))
PY
expect 2 "key 'rope_scaling'" import-hf "$tmp/bad" --out "$tmp/bad.h5"
[ ! -e "$tmp/bad.h5" ] && ok "import-hf wrote nothing for a refused config" || fail "import-hf left $tmp/bad.h5"
head -c 1000 "$fixture/model-00001-of-00002.safetensors" >"$tmp/bad/model-00001-of-00002.safetensors"
cp "$fixture/config.json" "$tmp/bad/config.json"
expect 2 "model-00001-of-00002.safetensors" import-hf "$tmp/bad" --out "$tmp/bad.h5"

[ $fails -eq 0 ] && echo "all Hugging Face export checks passed" || echo "$fails check(s) failed"
exit $((fails > 0))
