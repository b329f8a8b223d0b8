#!/usr/bin/env bash
# One-shot quantization on the product path (issue 23): kdtrain ptq --method gptq | awq |
# smoothquant on a small trained model (the corpus in tests/data) writes the quantized
# checkpoint format eval reads, with the method recorded; GPTQ's output error is below
# round-to-nearest's on held-out data; and the bad inputs: exit 2 naming the flag (and the
# layer), nothing written.
# Usage: test_oneshot_cli.sh <kdtrain binary> <repo root>
set -u
bin=$1
root=$2
source "$(dirname "$0")/lib.sh"
export OMP_NUM_THREADS=2

prepare_corpus
cat >"$tmp/m.yaml" <<YAML
model: {vocab: 300, d_model: 64, n_layers: 2, n_heads: 4, n_kv_heads: 4, d_ff: 128, tie_embeddings: true}
optim: {lr: 3.0e-3, warmup_steps: 2}
train: {steps: 30, batch_size: 8, seq_len: 32, seed: 3, threads: 2, log_every: 10}
data: {kind: shards, train: $tmp/prep/train.bin, val: $tmp/prep/val.bin}
run: {dir: $tmp/runs, name: m}
YAML
"$bin" train --config "$tmp/m.yaml" >"$tmp/m.log" 2>&1 || { fail "training"; cat "$tmp/m.log"; }
ck=$tmp/runs/m/checkpoints/step-00000030.h5
val() { "$bin" eval "$1" --data "$tmp/prep/val.bin" 2>&1 | sed -n 's/.*val loss \([0-9.]*\).*/\1/p'; }

for m in rtn gptq awq; do
  "$bin" ptq "$ck" --out "$tmp/$m.h5" --weight int3:g16 --activation none --method $m --samples 16 >"$tmp/$m.log" 2>&1 \
    || { fail "ptq --method $m"; cat "$tmp/$m.log"; continue; }
  eval "loss_$m=$(val "$tmp/$m.h5")"
done
"$bin" inspect "$tmp/gptq.h5" 2>&1 | grep -q "ptq_method.*gptq" && ok "the method is in the checkpoint's provenance" \
  || fail "no ptq_method provenance"
awk -v r="$loss_rtn" -v g="$loss_gptq" 'BEGIN { exit !(g < r) }' \
  && ok "int3:g16 held-out loss: rtn $loss_rtn, gptq $loss_gptq (below), awq $loss_awq" \
  || fail "gptq ($loss_gptq) not below rtn ($loss_rtn)"
grep -q "note: model.layers.0.self_attn.o_proj" "$tmp/awq.log" && fail "AWQ skipped v→o without grouped heads" \
  || ok "AWQ folded v→o (n_kv_heads = n_heads)"
"$bin" ptq "$ck" --out "$tmp/act.h5" --weight int4:g16 --activation none --method gptq --act-order --static-groups \
  --samples 8 >/dev/null 2>&1 && ok "gptq --act-order --static-groups" || fail "act-order with static groups"
"$bin" ptq "$ck" --out "$tmp/sq.h5" --weight int8:channel --activation int8:tensor --method smoothquant --samples 8 \
  --batches 2 >"$tmp/sq.log" 2>&1 && [ -n "$(val "$tmp/sq.h5")" ] && ok "smoothquant W8A8: held-out loss $(val "$tmp/sq.h5")" \
  || { fail "smoothquant"; cat "$tmp/sq.log"; }

# bad input: exit 2 naming the flag, nothing written
nothing() { [ ! -e "$tmp/bad.h5" ] && [ ! -e "$tmp/bad.h5.tmp" ] || fail "a failed ptq left $tmp/bad.h5"; }
expect 2 "--method: 'obq' is not a method" ptq "$ck" --out "$tmp/bad.h5" --method obq; nothing
expect 2 "gptq quantizes weights to integer formats; model.layers.0.self_attn.q_proj is fp8_e4m3:channel" ptq "$ck" --out "$tmp/bad.h5" --method gptq --weight fp8_e4m3:channel --activation none; nothing
expect 2 "needs --static-groups" ptq "$ck" --out "$tmp/bad.h5" --method gptq --weight int4:g16 --activation none --act-order; nothing
expect 2 "--act-order and --static-groups are GPTQ's" ptq "$ck" --out "$tmp/bad.h5" --method awq --act-order; nothing
expect 2 "--method smoothquant: the activation format has no static per-tensor scales" ptq "$ck" --out "$tmp/bad.h5" \
  --method smoothquant --activation int8:token; nothing
expect 2 "is 0 (undampened)" ptq "$ck" --out "$tmp/bad.h5" --method gptq --weight int4:g16 --activation none \
  --damp 0 --samples 1 --seq-len 8; nothing
expect 2 "$tmp/none.bin" ptq "$ck" --out "$tmp/bad.h5" --method gptq --data "$tmp/none.bin"; nothing
# a shard shorter than one calibration window: a few words tokenized by the model's own tokenizer
mkdir -p "$tmp/short"
echo "a short text of few words." >"$tmp/short/a.txt"
"$bin" prepare "$tmp/short" --out "$tmp/shortprep" --tokenizer "$tmp/prep/tokenizer.json" >/dev/null 2>&1 || fail "short prepare"
expect 2 "$tmp/shortprep/train.bin: 21 tokens, fewer than one sequence" ptq "$ck" --out "$tmp/bad.h5" --method gptq --data "$tmp/shortprep/train.bin"; nothing
[ "$fails" -eq 0 ] && echo "all one-shot CLI checks passed" || { echo "$fails failure(s)"; exit 1; }
