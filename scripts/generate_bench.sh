#!/usr/bin/env bash
# Generation speed: kdtrain generate (KV cache) beside llama.cpp (npm's node-llama-cpp, its
# prebuilt CPU build) on kdtrain's own GGUF export of the same model, on this machine, with
# the same thread count, one sequence (batch 1), greedy:
#   * the model: random weights (one training step at a learning rate of 1e-9 from the
#     initialisation), 105M parameters: vocab 4096 (the demo tokenizer), d_model 768, 14
#     blocks, 12 query heads on 4 KV heads, d_ff 2048, untied head; trained context 2048;
#   * fp32: kdtrain's fp32 weights and KV cache / GGUF F32 weights and an F32 KV cache;
#   * quantized: kdtrain ptq int8 groups of 32 with per-token int8 inputs (integer GEMMs) /
#     the same codes exported as GGUF Q8_0 (llama.cpp quantizes the activations to Q8 too),
#     kdtrain's fp32 KV cache / llama.cpp's default F16 one;
#   * contexts 128, 1024, 2048: a prompt of context − NEW tokens of the demo corpus's
#     validation text, then NEW greedy tokens; prefill tokens/s = the prompt over the time to
#     the first token, decode tokens/s = the NEW − 1 tokens after it over their time;
#   * the old generator (kdtrain generate --no-kv-cache: the whole context per token) at the
#     same contexts, OLD_NEW tokens;
#   * llama.cpp's decode tokens/s come from its own perf counters (llama_perf_context's eval
#     time), so JavaScript's per-token overhead is not in them; its share of the wall clock is
#     printed beside (scripts/llama_cpp_bench.mjs). Prefill is one call: wall clock.
# The last line: RESULT decode_vs_llamacpp=… prefill_vs_llamacpp=… decode_tokens_per_s=…
# old_decode_tokens_per_s=… (fp32, batch 1, context 1024; ratios kdtrain / llama.cpp).
# Usage: scripts/generate_bench.sh   (after scripts/demo.sh and scripts/test.sh, which
#        prepare the corpus and install node-llama-cpp into build/npm); THREADS (nproc),
#        NEW (32), OLD_NEW (3), RUNS (runs/generate-bench), KD (build/kdtrain).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
kd=${KD:-$root/build/kdtrain}
threads=${THREADS:-$(nproc)}
new=${NEW:-32}
old_new=${OLD_NEW:-3}
runs=${RUNS:-runs/generate-bench}
npm_dir=$root/build/npm
prep=.cache/sotu/prepared
[ -f "$prep/tokenizer.json" ] || { echo "generate_bench.sh: no $prep (run scripts/demo.sh first)" >&2; exit 2; }
[ -d "$npm_dir/node_modules/node-llama-cpp" ] \
  || { echo "generate_bench.sh: node-llama-cpp is not in $npm_dir (scripts/test.sh installs it)" >&2; exit 2; }
mkdir -p "$runs"

model() {  # name, model YAML, seq_len
  cat >"$runs/$1.yaml" <<YAML
model: {$2}
optim: {lr: 1.0e-9, warmup_steps: 1}
train: {steps: 1, batch_size: 1, seq_len: $3, seed: 1, threads: $threads, log_every: 1, eval_every: 0, checkpoint_every: 0}
data: {kind: shards, train: $prep/train.bin, val: $prep/val.bin}
run: {dir: $runs, name: $1}
YAML
  [ -f "$runs/$1/checkpoints/step-00000001.h5" ] || "$kd" train --config "$runs/$1.yaml" --overwrite >"$runs/$1.log" 2>&1
}
model big "vocab: 4096, d_model: 768, n_layers: 14, n_heads: 12, n_kv_heads: 4, d_ff: 2048, tie_embeddings: false" 2048
big=$runs/big/checkpoints/step-00000001.h5
[ -f "$runs/q.h5" ] || "$kd" ptq "$big" --out "$runs/q.h5" --weight int8:g32 --activation int8:token >"$runs/ptq.log" 2>&1
for f in big:f32 q:q8_0; do
  name=${f%:*} type=${f#*:}
  src=$runs/$name.h5; [ "$name" = q ] || src=$runs/$name/checkpoints/step-00000001.h5
  [ -f "$runs/$name.gguf" ] || "$kd" export "$src" --format gguf --gguf-type "$type" --out "$runs/$name.gguf" >/dev/null
done

# prompts: context - NEW tokens of validation text from token 5000 on, end-of-text ids (4094) dropped
for ctx in 128 1024 2048; do
  n=$(( ctx - new ))
  ids=$(od -An -tu2 -j$(( 64 + 2 * 5000 )) -N $(( 2 * n )) -v "$prep/val.bin" | tr -s ' \n' '\n' | grep -vx 4094 | tr '\n' ' ')
  "$kd" detokenize --tokenizer "$prep/tokenizer.json" --ids "$ids" >"$runs/p$ctx.txt"
done

field() { sed -nE "s/.*$2 ([0-9]+) tokens in ([0-9.]+) s \(([0-9.]+) tokens\/s\).*/\\$3/p" "$1"; }
kd_run() {  # checkpoint, context, new tokens, extra flags -> "prefill_tok/s decode_tok/s prompt_tokens"
  "$kd" generate "$1" --prompt "$(cat "$runs/p$2.txt")" --context "$2" --max-new-tokens "$3" --temperature 0 \
    --threads "$threads" "${@:4}" >/dev/null 2>"$runs/kd.err"
  echo "$(field "$runs/kd.err" prefill 3) $(field "$runs/kd.err" decode 3) $(field "$runs/kd.err" prefill 1)"
}
llama_run() {  # gguf, context, new tokens, KV type -> "prefill_tok/s decode_tok/s prompt_tokens js_share"
  node scripts/llama_cpp_bench.mjs "$npm_dir" "$1" "$runs/p$2.txt" "$3" "$2" "$threads" "$4" | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)
print("%.2f %.2f %d %.4f" % (r["prompt_tokens"] / r["prefill_s"], r["decode_tokens"] / r["native_decode_s"],
                             r["prompt_tokens"], r["js_share"]))'
}

echo "# generate_bench.sh $(date -u +%Y-%m-%dT%H:%MZ): $threads threads, $(nproc) cores, batch 1, greedy, $new new tokens"
echo "| model | context | prompt tokens (kdtrain / llama.cpp) | kdtrain prefill tok/s | llama.cpp prefill tok/s | kdtrain decode tok/s | llama.cpp decode tok/s | decode ratio | llama.cpp JS share of wall (excluded) | old generator decode tok/s |"
echo "|---|---|---|---|---|---|---|---|---|---|"
declare -A R
for ctx in 128 1024 2048; do
  for m in fp32 q8; do
    ck=$big; gg=$runs/big.gguf; kv=F32; label="105M fp32 / GGUF F32, F32 KV"
    [ $m = q8 ] && { ck=$runs/q.h5; gg=$runs/q.gguf; kv=F16; label="105M int8 g32 W8A8 / GGUF Q8_0, F16 KV"; }
    read -r kp kdec kn <<<"$(kd_run "$ck" $ctx $new)"
    read -r lp ldec ln js <<<"$(llama_run "$gg" $ctx $new $kv)"
    old=-
    if [ $m = fp32 ]; then
      read -r _ old _ <<<"$(kd_run "$ck" $ctx $old_new --no-kv-cache)"
      R[old$ctx]=$old
    fi
    R[$m$ctx]="$kp $kdec $lp $ldec"
    ratio=$(awk -v a="$kdec" -v b="$ldec" 'BEGIN { printf "%.3f", a / b }')
    share=$(awk -v a="$js" 'BEGIN { printf "%.1f%%", 100 * a }')
    echo "| $label | $ctx | $kn / $ln | $kp | $lp | $kdec | $ldec | $ratio | $share | $old |"
  done
done
read -r kp kdec lp ldec <<<"${R[fp321024]}"
echo "RESULT decode_vs_llamacpp=$(awk -v a="$kdec" -v b="$ldec" 'BEGIN { printf "%.3f", a / b }')" \
  "prefill_vs_llamacpp=$(awk -v a="$kp" -v b="$lp" 'BEGIN { printf "%.3f", a / b }')" \
  "decode_tokens_per_s=$kdec old_decode_tokens_per_s=${R[old1024]}"
