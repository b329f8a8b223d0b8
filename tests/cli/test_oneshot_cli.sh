#!/usr/bin/env bash
# One-shot compression on the product path (issue 23), on a small trained model (the corpus
# in tests/data): kdtrain ptq --method gptq | awq | smoothquant writes the quantized
# checkpoint format eval reads, with the method recorded, GPTQ below round-to-nearest on
# held-out data; kdtrain prune --method magnitude | wanda | sparsegpt at 50% and 2:4 writes
# a pruned checkpoint (masks) that ptq --method gptq quantizes keeping its zeros and that
# train.init_from holds through training; and the bad inputs: exit 2 naming the flag (and
# the layer), nothing written.
# Usage: test_oneshot_cli.sh <kdtrain binary> <repo root>
set -u
bin=$1
root=$2
source "$(dirname "$0")/lib.sh"
export OMP_NUM_THREADS=2
py=/usr/bin/python3

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

# pruning: each method at 50% and 2:4; SparseGPT (which updates the weights) below magnitude
for m in magnitude wanda sparsegpt; do
  for pat in "--sparsity 0.5" "--nm 2:4"; do
    tag=$m-$(echo "$pat" | tr -dc '0-9')
    "$bin" prune "$ck" --out "$tmp/$tag.h5" --method $m $pat --samples 16 >"$tmp/$tag.log" 2>&1 \
      || { fail "prune $m $pat"; cat "$tmp/$tag.log"; continue; }
    grep -q "50.00% of the blocks' linear weights pruned" "$tmp/$tag.log" || fail "prune $m $pat: not 50%"
    eval "ploss_${m}_$(echo "$pat" | tr -dc '0-9')=$(val "$tmp/$tag.h5")"
  done
done
for pat in 05 24; do
  mg=$(eval echo \$ploss_magnitude_$pat); wd=$(eval echo \$ploss_wanda_$pat); sg=$(eval echo \$ploss_sparsegpt_$pat)
  awk -v a="$sg" -v b="$mg" 'BEGIN { exit !(a < b) }' \
    && ok "pruned ($pat) held-out loss: magnitude $mg, wanda $wd, sparsegpt $sg (below magnitude)" \
    || fail "sparsegpt ($sg) not below magnitude ($mg) at $pat"
done
# prune, then quantize: GPTQ holds the zeros
"$bin" ptq "$tmp/sparsegpt-05.h5" --out "$tmp/spq.h5" --weight int4:g16 --activation none --method gptq --samples 16 \
  >"$tmp/spq.log" 2>&1 || { fail "ptq of a pruned checkpoint"; cat "$tmp/spq.log"; }
"$py" - "$tmp/sparsegpt-05.h5" "$tmp/spq.h5" <<'PY' && ok "gptq on the 50% sparsegpt model: every pruned weight's code is 0" || fail "gptq lost zeros"
import sys, h5py, numpy as np
p, q = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
for name, m in p["tensors/masks"].items():
    codes = q["tensors/quantized"][name + ".codes"][()]
    codes = np.stack([codes & 0xF, codes >> 4], axis=-1).reshape(m.shape) if codes.dtype == np.uint8 else codes
    assert (codes[m[()] == 0] == 0).all(), name
PY
# SparseGPT's joint mode: pruned 2:4 and quantized in one pass; the masks are in the quantized checkpoint
"$bin" ptq "$ck" --out "$tmp/joint.h5" --weight int4:g16 --activation none --method sparsegpt --nm 2:4 --samples 16 \
  >"$tmp/joint.log" 2>&1 || { fail "ptq --method sparsegpt"; cat "$tmp/joint.log"; }
"$py" - "$tmp/joint.h5" <<'PY' && ok "ptq --method sparsegpt --nm 2:4: masks 2:4, every pruned code 0, held-out loss $(val "$tmp/joint.h5")" || fail "joint sparsegpt"
import sys, h5py, numpy as np
q = h5py.File(sys.argv[1], "r")
assert len(q["tensors/masks"]) == 14
for name, m in q["tensors/masks"].items():
    m = m[()]
    assert (m.reshape(m.shape[0], -1, 4).sum(-1) == 2).all(), name
    codes = q["tensors/quantized"][name + ".codes"][()]
    codes = np.stack([codes & 0xF, codes >> 4], axis=-1).reshape(m.shape)
    assert (codes[m == 0] == 0).all(), name
PY
# distilled (here: trained) from the pruned start: the zeros are held
"$bin" train --config "$tmp/m.yaml" --set run.name=fromp --set train.init_from="$tmp/wanda-24.h5" --set train.steps=4 \
  >"$tmp/fromp.log" 2>&1 || { fail "training from a pruned start"; cat "$tmp/fromp.log"; }
grep -q "is pruned (it has masks): its zeros are held" "$tmp/fromp.log" || fail "no note that the masks are held"
"$py" - "$tmp/wanda-24.h5" "$tmp/runs/fromp/checkpoints/step-00000004.h5" <<'PY' && ok "trained 4 steps from the 2:4 start: every pruned weight still 0, masks kept" || fail "zeros not held"
import sys, h5py
p, t = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
for name, m in p["tensors/masks"].items():
    w = t["tensors/model"][name][()]
    assert (w[m[()] == 0] == 0).all() and (t["tensors/masks"][name][()] == m[()]).all(), name
PY
# QAT from the one-pass pruned + quantized checkpoint: masks and fake quantizers held together
"$bin" train --config "$tmp/m.yaml" --set run.name=qatp --set train.init_from="$tmp/joint.h5" --set train.steps=4 \
  --set quant.weight=int4:g16 --set quant.activation=none >"$tmp/qatp.log" 2>&1 || { fail "QAT from joint.h5"; cat "$tmp/qatp.log"; }
"$py" - "$tmp/joint.h5" "$tmp/runs/qatp/checkpoints/step-00000004.h5" <<'PY' && ok "QAT (int4:g16) from the joint 2:4 checkpoint: every pruned weight still 0" || fail "QAT lost zeros"
import sys, h5py
p, t = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
for name, m in p["tensors/masks"].items():
    assert (t["tensors/model"][name][()][m[()] == 0] == 0).all(), name
PY
# QAT from GPTQ's checkpoint in its own format: GPTQ's scales held (not re-derived by the
# calibrator), so the distilled model keeps the method's grid; another format: calibrated
"$bin" train --config "$tmp/m.yaml" --set run.name=qatg --set train.init_from="$tmp/gptq.h5" --set train.steps=4 \
  --set quant.weight=int3:g16 --set quant.activation=none >"$tmp/qatg.log" 2>&1 || { fail "QAT from gptq.h5"; cat "$tmp/qatg.log"; }
grep -q "is quantized: 14 weight tensors keep its scales (held through training)$" "$tmp/qatg.log" \
  || { fail "no note that GPTQ's scales are held"; grep init: "$tmp/qatg.log"; }
"$py" - "$tmp/gptq.h5" "$tmp/runs/qatg/checkpoints/step-00000004.h5" <<'PY' && ok "QAT (int3:g16) from GPTQ's checkpoint: after 4 steps every weight scale is still GPTQ's" || fail "GPTQ's scales not held"
import sys, h5py, numpy as np
g, t = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
names = [n[:-len(".scale")] for n in g["tensors/quantized"] if n.endswith(".weight.scale")]
assert len(names) == 14, names
for n in names:
    held = t["tensors/quant"][n[:-len(".weight")] + ".weight_scale"][()]
    assert np.array_equal(held, g["tensors/quantized"][n + ".scale"][()]), n
PY
"$bin" train --config "$tmp/m.yaml" --set run.name=qatg4 --set train.init_from="$tmp/gptq.h5" --set train.steps=2 \
  --set quant.weight=int4:g16 --set quant.activation=none >"$tmp/qatg4.log" 2>&1 || { fail "QAT int4 from gptq.h5"; cat "$tmp/qatg4.log"; }
grep -q "0 weight tensors keep its scales (held through training); 14 in another format here get the weight calibrator's" \
  "$tmp/qatg4.log" && ok "QAT in another format than the init checkpoint's: calibrated, and said" \
  || { fail "no note on the other format"; grep init: "$tmp/qatg4.log"; }
# a pruned checkpoint exports like any other
"$bin" export "$tmp/sparsegpt-24.h5" --format hf --out "$tmp/hf" >/dev/null 2>&1 && [ -f "$tmp/hf/model.safetensors" ] \
  && ok "export --format hf of a pruned checkpoint" || fail "export of a pruned checkpoint"

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
expect 2 "--data: $tmp/none.bin: no such file" ptq "$ck" --out "$tmp/bad.h5" --method gptq --data "$tmp/none.bin"; nothing
# a shard shorter than one calibration window: a few words tokenized by the model's own tokenizer
mkdir -p "$tmp/short"
echo "a short text of few words." >"$tmp/short/a.txt"
"$bin" prepare "$tmp/short" --out "$tmp/shortprep" --tokenizer "$tmp/prep/tokenizer.json" >/dev/null 2>&1 || fail "short prepare"
expect 2 "--data: $tmp/shortprep/train.bin holds 21 tokens, fewer than one calibration sequence" ptq "$ck" --out "$tmp/bad.h5" --method gptq --data "$tmp/shortprep/train.bin"; nothing
expect 2 "--data: $tmp/shortprep/train.bin holds 21 tokens, fewer than one calibration sequence of 64 + 1 = 65 (--seq-len)" \
  prune "$ck" --out "$tmp/bad.h5" --method wanda --sparsity 0.5 --seq-len 64 --data "$tmp/shortprep/train.bin"; nothing
expect 2 "ptq --method sparsegpt: give a sparsity target" ptq "$ck" --out "$tmp/bad.h5" --method sparsegpt --weight int4:g16 --activation none; nothing
expect 2 "--sparsity and --nm are --method sparsegpt's" ptq "$ck" --out "$tmp/bad.h5" --method gptq --nm 2:4; nothing
expect 2 "--nm 3:5: model.layers.0.self_attn.q_proj has rows of 64 inputs, which groups of 5 do not divide" \
  prune "$ck" --out "$tmp/bad.h5" --nm 3:5; nothing
expect 2 "--nm: '2-4' is not an N:M pattern" prune "$ck" --out "$tmp/bad.h5" --nm 2-4; nothing
expect 2 "give one sparsity target" prune "$ck" --out "$tmp/bad.h5" --sparsity 0.5 --nm 2:4; nothing
expect 2 "give one sparsity target" prune "$ck" --out "$tmp/bad.h5"; nothing
expect 2 "--sparsity 1.5: a fraction of every row in (0, 1)" prune "$ck" --out "$tmp/bad.h5" --sparsity 1.5; nothing
expect 2 "--method: 'obs' is not a method: magnitude | wanda | sparsegpt" prune "$ck" --out "$tmp/bad.h5" --method obs --sparsity 0.5; nothing
expect 2 "prune: $tmp/rtn.h5 is quantized" prune "$tmp/rtn.h5" --out "$tmp/bad.h5" --sparsity 0.5; nothing
expect 2 "--data: $tmp/none.bin: no such file" prune "$ck" --out "$tmp/bad.h5" --method wanda --sparsity 0.5 --data "$tmp/none.bin"; nothing
expect 2 "prune --out $ck is its input" prune "$ck" --out "$ck" --sparsity 0.5
[ "$fails" -eq 0 ] && echo "all one-shot CLI checks passed" || { echo "$fails failure(s)"; exit 1; }
