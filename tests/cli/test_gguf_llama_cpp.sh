#!/usr/bin/env bash
# Optional: a kdtrain GGUF export run in llama.cpp (npm's node-llama-cpp, its prebuilt CPU
# build; scripts/llama_cpp_greedy.mjs). llama.cpp must tokenize a multilingual text to the ids
# of scripts/hf_tokenizer_ref.py, and its greedy continuation of a prompt (F32 weights) must be
# kdtrain generate's, byte for byte. Skips, saying so, where node-llama-cpp is not installed
# (scripts/test.sh installs it when npm's registry is reachable).
# Usage: test_gguf_llama_cpp.sh <kdtrain binary> <repo root> <npm prefix>
set -u
bin=$1
root=$2
npm_prefix=$3
source "$(dirname "$0")/lib.sh"
export OMP_NUM_THREADS=2
need_npm "$npm_prefix" node-llama-cpp @huggingface/gguf
fixture=$root/tests/fixtures/hf_tok_llama3

"$bin" prepare "$root/tests/data/doc_c_languages.txt" --tokenizer "$fixture/tokenizer.json" --val-every 0 \
  --out "$tmp/prep" >/dev/null 2>&1 || fail "prepare"
train_tiny s "$tmp/prep" "vocab: 562, d_model: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2, d_ff: 96, tie_embeddings: false, rope_theta: 500000" 4 32
ck=$tmp/runs/s/checkpoints/step-00000004.h5
"$bin" export "$ck" --format gguf --gguf-type f32 --out "$tmp/s.gguf" >/dev/null 2>&1 || fail "export --format gguf"

# tokenization: the fixture's multilingual case (valid UTF-8), after llama.cpp's bos
/usr/bin/python3 - "$fixture/encodings.json" "$tmp/text" "$tmp/want" <<'PY'
import json, sys
case = json.load(open(sys.argv[1]))["cases"][1]
open(sys.argv[2], "wb").write(bytes.fromhex(case["hex"]))
open(sys.argv[3], "w").write(json.dumps(case["ids"]))
PY
node "$root/scripts/llama_cpp_greedy.mjs" "$npm_prefix" "$tmp/s.gguf" "@$tmp/text" 1 >"$tmp/run" 2>"$tmp/err" \
  || { fail "llama.cpp could not run the file"; cat "$tmp/err"; }
/usr/bin/python3 - "$tmp/run" "$tmp/want" <<'PY' && ok "llama.cpp tokenizes the multilingual text to the reference's $(cat "$tmp/n") ids" || fail "llama.cpp's ids differ"
import json, sys
got = json.load(open(sys.argv[1]))["prompt_ids"][1:]
want = json.load(open(sys.argv[2]))
open(sys.argv[2].replace("want", "n"), "w").write(str(len(want)))
sys.exit(0 if got == want else (print("llama.cpp:", got[:20], "\nreference:", want[:20]) or 1))
PY

# greedy continuation: llama.cpp's bytes against kdtrain generate's
prompt="Words from"
node "$root/scripts/llama_cpp_greedy.mjs" "$npm_prefix" "$tmp/s.gguf" "$prompt" 8 >"$tmp/run" 2>"$tmp/err" || { fail "llama.cpp greedy"; cat "$tmp/err"; }
want=$("$bin" generate "$ck" --prompt "$prompt" --max-new-tokens 8 --temperature 0 | head -c -1 | tail -c +$(( ${#prompt} + 1 )) | od -An -tx1 | tr -d ' \n')
got=$(sed -E 's/.*"greedy_hex":"([0-9a-f]*)".*/\1/' "$tmp/run")
[ -n "$want" ] && [ "$got" = "$want" ] && ok "llama.cpp's greedy continuation is kdtrain generate's: $got" \
  || fail "greedy continuations differ: llama.cpp $got, kdtrain $want"

[ $fails -eq 0 ] && echo "all llama.cpp checks passed" || echo "$fails check(s) failed"
exit $((fails > 0))
