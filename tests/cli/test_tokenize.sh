#!/usr/bin/env bash
# kdtrain tokenize / detokenize: a text (UTF-8, emoji, bytes that are not UTF-8) through
# tokenize --ids and detokenize comes back byte for byte, from a tokenizer file and from a
# checkpoint; the JSON's ids are the --ids ones; --framed adds eot; --out never writes over
# an existing file without --overwrite, nor over its input; bad ids and paths exit 2.
# Usage: test_tokenize.sh <kdtrain binary> <repo root>
set -u
bin=$1
root=$2
source "$(dirname "$0")/lib.sh"
export OMP_NUM_THREADS=2

prepare_corpus
tok=$tmp/prep/tokenizer.json
printf 'Hello, wörld! 🙂 tabs\tand\nnewlines \xff\xfe raw bytes\n' >"$tmp/text.txt"
"$bin" tokenize --tokenizer "$tok" "$tmp/text.txt" --ids >"$tmp/ids.txt" 2>"$tmp/err" || fail "tokenize --ids: $(cat "$tmp/err")"
"$bin" detokenize --tokenizer "$tok" "$tmp/ids.txt" >"$tmp/back.txt" 2>"$tmp/err" || fail "detokenize: $(cat "$tmp/err")"
cmp -s "$tmp/text.txt" "$tmp/back.txt" && ok "tokenize --ids | detokenize gives the text back byte for byte" \
  || fail "round trip differs"
"$bin" tokenize --tokenizer "$tok" "$tmp/text.txt" >"$tmp/tok.json" || fail "tokenize (JSON)"
/usr/bin/python3 - "$tmp/tok.json" "$tmp/ids.txt" <<'PY' && ok "the JSON's ids are --ids', with a piece per id" || fail "JSON output"
import json, sys
j = json.load(open(sys.argv[1]))
ids = [int(x) for x in open(sys.argv[2]).read().split()]
assert j["ids"] == ids and j["tokens"] == len(ids) and len(j["pieces"]) == len(ids), j
assert "<0xFF>" in "".join(j["pieces"]), j["pieces"]
PY
"$bin" detokenize --tokenizer "$tok" "$tmp/tok.json" | cmp -s - "$tmp/text.txt" && ok "detokenize reads tokenize's JSON" \
  || fail "detokenize of the JSON"
framed=$("$bin" tokenize --tokenizer "$tok" --text "a" --framed --ids)
plain=$("$bin" tokenize --tokenizer "$tok" --text "a" --ids)
[ "$(echo "$framed" | wc -w)" = $(($(echo "$plain" | wc -w) + 1)) ] && ok "--framed adds eot" || fail "--framed: $framed vs $plain"
# from a checkpoint's tokenizer
train_tiny tiny "$tmp/prep" "vocab: 300, d_model: 8, n_layers: 1, n_heads: 2, n_kv_heads: 1, d_ff: 16" 1 16
ck=$tmp/runs/tiny/checkpoints/step-00000001.h5
"$bin" tokenize --tokenizer "$ck" "$tmp/text.txt" --ids | cmp -s - "$tmp/ids.txt" && ok "a checkpoint's tokenizer is the same" \
  || fail "tokenize with a checkpoint"
# --out: new files only, never the input
"$bin" tokenize --tokenizer "$tok" "$tmp/text.txt" --ids --out "$tmp/o.txt" && cmp -s "$tmp/o.txt" "$tmp/ids.txt" \
  && ok "--out writes the file" || fail "--out"
expect 2 "tokenize --out $tmp/o.txt already exists: give --overwrite" tokenize --tokenizer "$tok" "$tmp/text.txt" --out "$tmp/o.txt"
cmp -s "$tmp/o.txt" "$tmp/ids.txt" && ok "the existing --out is untouched" || fail "--out was changed"
"$bin" tokenize --tokenizer "$tok" --text "x" --out "$tmp/o.txt" --overwrite && [ "$(cat "$tmp/o.txt" | head -c1)" = "{" ] \
  && ok "--overwrite replaces it" || fail "--overwrite"
expect 2 "detokenize --out $tmp/ids.txt is its input" detokenize --tokenizer "$tok" "$tmp/ids.txt" --out "$tmp/ids.txt" --overwrite
[ ! -e "$tmp/o.txt.tmp" ] && ok "no temporary file left" || fail "o.txt.tmp left"
# bad input
expect 2 "outside the tokenizer's vocabulary of" detokenize --tokenizer "$tok" --ids "1 2 70000"
expect 2 "\"x1\" (token 1) is not an integer token id" detokenize --tokenizer "$tok" --ids "5 x1"
expect 2 "nope.json" tokenize --tokenizer "$tmp/nope.json" --text "a"
expect 2 "$tmp/missing.txt: cannot open the input text" tokenize --tokenizer "$tok" "$tmp/missing.txt"
mkfifo "$tmp/fifo"
expect 2 "not a regular file" tokenize --tokenizer "$tok" "$tmp/fifo"
[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
