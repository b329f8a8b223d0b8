#!/usr/bin/env bash
# kdtrain export --format gguf, read back by npm's @huggingface/gguf (scripts/gguf_check.mjs):
# every metadata key and tensor against the same checkpoint's --format hf export, in F32, F16
# and Q8_0, for a Llama 3 style student (its tokenizer, GQA, Llama 3 RoPE scaling: rope_freqs)
# and one with kdtrain's own tokenizer (Q8_0 falling back to F16 for rows of 16). Bad input
# exits 2. Skips, saying so, without node or the npm package (scripts/test.sh installs it).
# Usage: test_gguf_export.sh <kdtrain binary> <repo root> <npm prefix>
set -u
bin=$1
root=$2
npm_prefix=$3
source "$(dirname "$0")/lib.sh"
export OMP_NUM_THREADS=2
need_npm "$npm_prefix" @huggingface/gguf
text=$root/tests/data/doc_c_languages.txt

student() {  # student NAME PREPDIR "MODEL KEYS": trained 2 steps, exported --format hf to $tmp/NAME-hf
  train_tiny "$@"
  "$bin" export "$tmp/runs/$1/checkpoints/step-00000002.h5" --format hf --out "$tmp/$1-hf" >/dev/null 2>&1 \
    || fail "export --format hf $1"
}
check() {  # check NAME TYPE
  "$bin" export "$tmp/runs/$1/checkpoints/step-00000002.h5" --format gguf --gguf-type "$2" --out "$tmp/$1-$2.gguf" \
    >"$tmp/out" 2>&1 || { fail "export --format gguf $1 $2"; cat "$tmp/out"; return; }
  node "$root/scripts/gguf_check.mjs" "$npm_prefix" "$tmp/$1-$2.gguf" "$tmp/$1-hf" >"$tmp/check" 2>&1 \
    && ok "$1 $2: $(tail -1 "$tmp/check")" || { fail "$1 $2: the GGUF check failed"; cat "$tmp/check"; }
}

"$bin" prepare "$text" --tokenizer "$root/tests/fixtures/hf_tok_llama3/tokenizer.json" --val-every 0 \
  --out "$tmp/prep3" >/dev/null 2>&1 || fail "prepare with the Llama 3 tokenizer"
student llama3 "$tmp/prep3" "vocab: 562, d_model: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2, d_ff: 96, tie_embeddings: false, rope_theta: 500000, rope_scaling_factor: 8, rope_low_freq_factor: 1, rope_high_freq_factor: 4, rope_original_context: 16"
for type in f32 f16 q8_0; do check llama3 $type; done

"$bin" prepare "$text" --vocab-size 300 --val-every 0 --out "$tmp/prepn" >/dev/null 2>&1 || fail "prepare (native)"
student native "$tmp/prepn" "vocab: 300, d_model: 16, n_layers: 1, n_heads: 2, n_kv_heads: 1, d_ff: 32, tie_embeddings: true"
check native q8_0
grep -q "matrices: 1 in Q8_0, 7 in F16" "$tmp/out" && ok "rows of 16 fall back to F16" || { fail "F16 fallback"; cat "$tmp/out"; }

ck=$tmp/runs/native/checkpoints/step-00000002.h5

# a quantized student (ptq W8 per channel, A8 static): the HF export holds the dequantized
# weights and, beside them, the scales that give the integer codes back; GGUF defaults to Q8_0
"$bin" ptq "$ck" --out "$tmp/q.h5" --weight int8:channel --activation int8:tensor --batches 2 >/dev/null 2>&1 || fail "ptq"
"$bin" export "$tmp/q.h5" --format hf --out "$tmp/q-hf" >"$tmp/out" 2>&1 && grep -q "quantization tensors beside them" "$tmp/out" \
  || { fail "export --format hf of a quantized checkpoint"; cat "$tmp/out"; }
/usr/bin/python3 - "$tmp/q-hf/model.safetensors" >"$tmp/out" 2>&1 <<'PY' && ok "quantized export: $(cat "$tmp/out")" || { fail "quantized export's parameters"; cat "$tmp/out"; }
import json, struct, sys
import numpy as np
blob = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", blob[:8])
head = json.loads(blob[8:8 + n])
meta = json.loads(head.pop("__metadata__")["kdtrain.quantization"])
def get(name):
    t = head[name]; b, e = t["data_offsets"]
    return np.frombuffer(blob[8 + n + b:8 + n + e], dtype={"F32": "<f4", "I32": "<i4"}[t["dtype"]]).reshape(t["shape"])
weights = [k[:-len(".weight")] for k, v in meta.items() if k.endswith(".weight")]
assert weights and all(v == "int8:channel:sym" for k, v in meta.items() if k.endswith(".weight")), meta
worst = 0.0
for m in weights:
    w, s = get(m + ".weight"), get(m + ".weight_scale")
    codes = w / s[:, None]
    assert codes.min() >= -128.001 and codes.max() <= 127.001, m  # the int8 grid
    worst = max(worst, float(np.max(np.abs(codes - np.round(codes)))))
inputs = [k for k in head if k.endswith(".input_scale")]
assert inputs and all(get(k)[0] > 0 for k in inputs)
assert worst < 1e-3, worst
print(f"{len(weights)} int8 weights, each w / weight_scale within {worst:.1e} of an integer code; {len(inputs)} input scales")
PY
"$bin" import-hf "$tmp/q-hf" --out "$tmp/q-imported.h5" >"$tmp/out" 2>&1 && grep -q "quantization tensors are not imported" "$tmp/out" \
  && ok "import-hf reads a quantized export as its dequantized weights" || { fail "import-hf of a quantized export"; cat "$tmp/out"; }
"$bin" export "$tmp/q.h5" --format gguf --out "$tmp/q.gguf" >"$tmp/out" 2>&1 && grep -q "in Q8_0" "$tmp/out" \
  && node "$root/scripts/gguf_check.mjs" "$npm_prefix" "$tmp/q.gguf" "$tmp/q-hf" >"$tmp/check" 2>&1 \
  && ok "quantized student as GGUF (Q8_0 by default): $(tail -1 "$tmp/check")" || { fail "GGUF of a quantized student"; cat "$tmp/out" "$tmp/check"; }
expect 2 "--gguf-type: 'q4_k' is not a GGUF tensor type" export "$ck" --format gguf --gguf-type q4_k --out "$tmp/bad.gguf"
expect 2 "--gguf-type and --context-length go with --format gguf" export "$ck" --compact --gguf-type f16 --out "$tmp/bad.h5"
"$bin" import-hf "$root/tests/fixtures/hf_tiny" --out "$tmp/notok.h5" >/dev/null 2>&1
expect 2 "holds no tokenizer, and llama.cpp needs one" export "$tmp/notok.h5" --format gguf --out "$tmp/bad.gguf"
[ ! -e "$tmp/bad.gguf" ] && [ ! -e "$tmp/bad.gguf.tmp" ] && ok "nothing written on refusal" || fail "a refused export left a file"

[ $fails -eq 0 ] && echo "all GGUF export checks passed" || echo "$fails check(s) failed"
exit $((fails > 0))
