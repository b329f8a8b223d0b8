#!/usr/bin/env bash
# Hugging Face tokenizers on the product path, checked by scripts/hf_tokenizer_ref.py (its own
# encoder, Python's `regex`): prepare with a Llama 3 style tokenizer.json frames each document
# as [bos] text [eot] with the reference's ids; a model trained on it exports a tokenizer.json
# that the reference encodes the same way; import-hf of that export gives the same shards.
# A kdtrain-trained tokenizer, exported, also encodes as kdtrain does under the reference.
# Refusals exit 2 naming the file and field.
# Usage: test_hf_tokenizer_cli.sh <kdtrain binary> <repo root>
set -u
bin=$1
root=$2
source "$(dirname "$0")/lib.sh"
export OMP_NUM_THREADS=2
/usr/bin/python3 -c 'import regex' 2>/dev/null || { echo "SKIP: python3-regex is not installed"; exit 77; }
ref() { /usr/bin/python3 "$root/scripts/hf_tokenizer_ref.py" "$@"; }
text=$root/tests/data/doc_c_languages.txt
hf=$root/tests/fixtures/hf_tok_llama3

# 1. Llama 3 style: prepare with the fixture's tokenizer.json (eos from tokenizer_config.json)
"$bin" prepare "$text" --tokenizer "$hf/tokenizer.json" --val-every 0 --out "$tmp/prep3" >"$tmp/out" 2>&1 \
  || { fail "prepare --tokenizer tokenizer.json"; cat "$tmp/out"; }
ref check-shard "$hf" "$tmp/prep3/train.bin" "$text" >"$tmp/out" 2>&1 \
  && ok "prepare with a Llama 3 tokenizer.json: $(cat "$tmp/out")" || { fail "prepare's ids differ"; cat "$tmp/out"; }

# 2. a model trained on it carries the tokenizer; its export's tokenizer.json encodes alike
train_tiny llama3 "$tmp/prep3" "vocab: 562, d_model: 16, n_layers: 1, n_heads: 2, n_kv_heads: 1, d_ff: 32, tie_embeddings: true"
"$bin" export "$tmp/runs/llama3/checkpoints/step-00000002.h5" --format hf --out "$tmp/export3" >"$tmp/out" 2>&1 \
  || { fail "export --format hf with a tokenizer"; cat "$tmp/out"; }
ref check-shard "$tmp/export3" "$tmp/prep3/train.bin" "$text" >"$tmp/out" 2>&1 \
  && ok "the exported tokenizer.json, under the reference: $(cat "$tmp/out")" || { fail "exported tokenizer differs"; cat "$tmp/out"; }
grep -q '"eos_token_id": 560' "$tmp/export3/config.json" && grep -q '"bos_token_id": 559' "$tmp/export3/config.json" \
  && ok "config.json names bos 559 and eos 560" || fail "config.json lacks the token ids"

# 3. import-hf of the export, then prepare with the checkpoint's tokenizer: the same shard
"$bin" import-hf "$tmp/export3" --out "$tmp/imported.h5" >"$tmp/out" 2>&1 || { fail "import-hf"; cat "$tmp/out"; }
grep -q "tokenizer.json: 562 tokens, 300 merges, end of text id 560, each text starts with id 559" "$tmp/out" \
  && ok "import-hf reads the tokenizer" || { fail "import-hf's tokenizer line"; cat "$tmp/out"; }
"$bin" prepare "$text" --tokenizer "$tmp/imported.h5" --val-every 0 --out "$tmp/prep3b" >/dev/null 2>&1 \
  && cmp -s "$tmp/prep3/train.bin" "$tmp/prep3b/train.bin" \
  && ok "prepare --tokenizer CHECKPOINT (the imported model) writes the same shard" || fail "shards differ after import"
"$bin" generate "$tmp/imported.h5" --prompt "Words from" --max-new-tokens 4 --seed 1 >"$tmp/out" 2>&1 \
  && grep -q "^Words from" "$tmp/out" && ok "generate from the imported checkpoint" || { fail "generate"; cat "$tmp/out"; }

# 4. kdtrain's own tokenizer, exported: the reference reads its pattern and merges alike
"$bin" prepare "$text" --vocab-size 300 --val-every 0 --out "$tmp/prepn" >/dev/null 2>&1 || fail "prepare (native)"
train_tiny native "$tmp/prepn" "vocab: 300, d_model: 16, n_layers: 1, n_heads: 2, n_kv_heads: 1, d_ff: 32, tie_embeddings: true"
"$bin" export "$tmp/runs/native/checkpoints/step-00000002.h5" --format hf --out "$tmp/exportn" >/dev/null 2>&1 \
  || fail "export --format hf (native tokenizer)"
ref check-shard "$tmp/exportn" "$tmp/prepn/train.bin" "$text" >"$tmp/out" 2>&1 \
  && ok "kdtrain's tokenizer exported: $(cat "$tmp/out")" || { fail "exported native tokenizer differs"; cat "$tmp/out"; }

# 5. refusals: exit 2, the file and the field named, nothing written
mkdir -p "$tmp/sp"
/usr/bin/python3 - "$hf/tokenizer.json" "$tmp/sp/tokenizer.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1])); t["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581"}
json.dump(t, open(sys.argv[2], "w"))
PY
expect 2 "sp/tokenizer.json: pre_tokenizer is Metaspace: SentencePiece-style" prepare "$text" --tokenizer "$tmp/sp/tokenizer.json" --out "$tmp/prep_sp"
[ ! -e "$tmp/prep_sp/train.bin" ] && ok "nothing prepared with a refused tokenizer" || fail "prepare wrote a shard"
"$bin" import-hf "$root/tests/fixtures/hf_tiny" --out "$tmp/notok.h5" >/dev/null 2>&1
expect 2 "the checkpoint has no tokenizer" prepare "$text" --tokenizer "$tmp/notok.h5" --out "$tmp/prep_nt"
expect 2 "the directory has no tokenizer.json" prepare "$text" --tokenizer "$root/tests/fixtures/hf_tiny" --out "$tmp/prep_nt"

[ $fails -eq 0 ] && echo "all Hugging Face tokenizer checks passed" || echo "$fails check(s) failed"
exit $((fails > 0))
