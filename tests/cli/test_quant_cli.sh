#!/usr/bin/env bash
# Quantization on the product path (small corpus in tests/data): QAT inside distill with an
# exact resume across the schedule's phases -> kdtrain ptq (calibrated, and from the QAT
# state) -> eval and generate of the quantized checkpoint with integer GEMMs; and the bad
# inputs: exit 2, a message naming the key or flag, nothing written.
# Usage: test_quant_cli.sh <kdtrain binary> <repo root>
set -u
bin=$1
root=$2
source "$(dirname "$0")/lib.sh"
export OMP_NUM_THREADS=2

prepare_corpus
cat >"$tmp/teacher.yaml" <<YAML
model: {vocab: 300, d_model: 32, n_layers: 2, n_heads: 4, n_kv_heads: 2, d_ff: 64, tie_embeddings: true}
optim: {lr: 3.0e-3, warmup_steps: 2}
train: {steps: 6, batch_size: 4, seq_len: 32, seed: 3, threads: 2, log_every: 3}
data: {kind: shards, train: $tmp/prep/train.bin, val: $tmp/prep/val.bin}
run: {dir: $tmp/runs, name: teacher}
YAML
"$bin" train --config "$tmp/teacher.yaml" >"$tmp/teacher.log" 2>&1 || { fail "teacher"; cat "$tmp/teacher.log"; }
tckpt=$tmp/runs/teacher/checkpoints/step-00000006.h5

# QAT + KD: W4A8 with LSQ, static inputs by KL; fake quantization from step 3, observers
# frozen at step 6; checkpoints at 2, 4, 6, 8, 10
cat >"$tmp/qat.yaml" <<YAML
model: {vocab: 300, d_model: 32, n_layers: 1, n_heads: 2, n_kv_heads: 1, d_ff: 64, tie_embeddings: false}
teacher: {checkpoint: $tckpt}
distill: {alpha: 0.5, temperature: 1.0}
optim: {lr: 3.0e-3, warmup_steps: 2}
train: {steps: 10, batch_size: 4, seq_len: 32, seed: 5, threads: 2, log_every: 5, eval_every: 5, checkpoint_every: 2, keep_checkpoints: 10}
data: {kind: shards, train: $tmp/prep/train.bin, val: $tmp/prep/val.bin}
run: {dir: $tmp/runs, name: qat}
quant: {weight: "int4:g16", activation: "int8:tensor", activation_calibrator: kl, learn_scales: true,
        fake_quant_start: 3, freeze_observers: 6, head: true}
YAML
"$bin" distill --config "$tmp/qat.yaml" >"$tmp/qat.log" 2>&1 || { fail "QAT distill"; cat "$tmp/qat.log"; }
grep -q "fake quantization from step 3" "$tmp/qat.log" && ok "QAT run reports its quantizers" || fail "no quant summary"
for from in 2 4 6; do  # before fake quant, between it and the freeze, at the freeze
  rm -rf "$tmp/runs/res$from"
  cp -r "$tmp/runs/qat" "$tmp/runs/res$from"
  for s in 2 4 6 8 10; do [ "$s" -gt "$from" ] && rm "$tmp/runs/res$from/checkpoints/step-$(printf %08d $s).h5"; done
  "$bin" distill --resume "$tmp/runs/res$from" >/dev/null 2>&1 || fail "resume from $from"
  if cmp -s <(strip "$tmp/runs/qat/metrics.jsonl") <(strip "$tmp/runs/res$from/metrics.jsonl"); then
    ok "QAT resumed from step $from: losses equal bit for bit (scales, observers, phase restored)"
  else
    fail "QAT resume from $from differs"; diff <(strip "$tmp/runs/qat/metrics.jsonl") <(strip "$tmp/runs/res$from/metrics.jsonl") | head -4
  fi
done
qckpt=$tmp/runs/qat/checkpoints/step-00000010.h5

# PTQ from the QAT state, then integer eval and generate
"$bin" ptq "$qckpt" --out "$tmp/q-qat.h5" >"$tmp/ptq1.log" 2>&1 && grep -q "calibrator QAT state" "$tmp/ptq1.log" \
  && ok "ptq of a QAT checkpoint keeps its quantizers" || { fail "ptq from QAT"; cat "$tmp/ptq1.log"; }
"$bin" eval "$tmp/q-qat.h5" --fp32-baseline >"$tmp/eval1.log" 2>&1 && grep -q "integer GEMMs: 5 layers" "$tmp/eval1.log" \
  && ok "eval runs the quantized checkpoint on integer GEMMs: $(grep -o 'speed [0-9]* tokens/s' "$tmp/eval1.log")" \
  || { fail "quantized eval"; cat "$tmp/eval1.log"; }
# the logged QAT validation loss is what the quantized checkpoint gives (same quantizers)
logged=$(grep '"type":"eval"' "$tmp/runs/qat/metrics.jsonl" | tail -1 | sed -E 's/.*"val_loss":([^,}]*).*/\1/')
evald=$("$bin" eval "$tmp/q-qat.h5" --no-teacher --json | sed -E 's/.*"val_loss":([^,}]*).*/\1/')
awk -v a="$logged" -v b="$evald" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 2e-3 * a) }' \
  && ok "integer eval $evald vs the QAT run's fake-quantized eval $logged (within 0.2%)" \
  || fail "integer eval $evald far from the logged QAT eval $logged"
"$bin" generate "$tmp/q-qat.h5" --prompt "The" --max-new-tokens 5 >/dev/null && ok "generate from the quantized checkpoint" \
  || fail "quantized generate"

# QAT fine-tuning: a float run resumed with a quant section added starts from its weights
cp -r "$tmp/runs/teacher" "$tmp/runs/finetune"
"$bin" train --resume "$tmp/runs/finetune" --set train.steps=9 --set quant.weight=int4:g16 \
  --set quant.activation=int8:tensor --set quant.learn_scales=true >"$tmp/ft.log" 2>&1 \
  && grep -q "QAT starts from its weights, calibrating afresh" "$tmp/ft.log" \
  && "$bin" ptq "$tmp/runs/finetune/checkpoints/step-00000009.h5" --out "$tmp/q-ft.h5" >/dev/null 2>&1 \
  && ok "QAT fine-tuning from a float checkpoint (resume with a quant section), exported by ptq" \
  || { fail "QAT fine-tuning from a float run"; tail -3 "$tmp/ft.log"; }

# PTQ of the float teacher with each calibrator; W4A16 and FP8 too
for cal in minmax moving_average percentile mse kl; do
  "$bin" ptq "$tckpt" --out "$tmp/q-$cal.h5" --weight int8:channel --activation int8:tensor --calibrator $cal --batches 2 \
    >"$tmp/ptq-$cal.log" 2>&1 && "$bin" eval "$tmp/q-$cal.h5" --json >"$tmp/eval-$cal.json" 2>&1 \
    && ok "ptq W8A8 --calibrator $cal: $(sed -E 's/.*"val_loss":([^,}]*).*/val loss \1/' "$tmp/eval-$cal.json")" \
    || { fail "ptq $cal"; cat "$tmp/ptq-$cal.log" "$tmp/eval-$cal.json"; }
done
"$bin" ptq "$tckpt" --out "$tmp/q-w4a16.h5" --weight int4:g32:asym --activation none >/dev/null 2>&1 \
  && "$bin" eval "$tmp/q-w4a16.h5" | grep -q "weight-only: 8" && ok "W4A16 runs weight-only" || fail "W4A16"
"$bin" ptq "$tckpt" --out "$tmp/q-fp8.h5" --weight fp8_e4m3:channel --activation fp8_e4m3:token >/dev/null 2>&1 \
  && "$bin" eval "$tmp/q-fp8.h5" | grep -q "simulated in fp32: 8" && ok "FP8 runs simulated and says so" || fail "FP8"

# --- bad input: exit 2, named, nothing written
expect 2 "--weight: 9 bits is out of range" ptq "$tckpt" --out "$tmp/bad1.h5" --weight int9
expect 2 "--activation: unknown quantization type 'int8x'" ptq "$tckpt" --out "$tmp/bad2.h5" --activation int8x
expect 2 "--weight: group size 128 does not divide the input dimension 32" ptq "$tckpt" --out "$tmp/bad3.h5" --weight int4:g128
expect 2 "--calibrator: unknown calibrator 'entropy'" ptq "$tckpt" --out "$tmp/bad4.h5" --activation int8:tensor --calibrator entropy
# a model trained on a synthetic stream has no training shard to calibrate on
cat >"$tmp/synth.yaml" <<YAML
model: {vocab: 32, d_model: 16, n_layers: 1, n_heads: 2, n_kv_heads: 1, d_ff: 32}
optim: {warmup_steps: 0}
train: {steps: 1, batch_size: 2, seq_len: 8, threads: 2}
data: {kind: markov}
run: {dir: $tmp/runs, name: synth}
YAML
"$bin" train --config "$tmp/synth.yaml" >/dev/null 2>&1 || fail "synthetic model"
expect 2 "need calibration data: give --data (the checkpoint's data.kind is synthetic" ptq \
  "$tmp/runs/synth/checkpoints/step-00000001.h5" --out "$tmp/bad5.h5" --activation int8:tensor
expect 2 "give --batches > 0" ptq "$tckpt" --out "$tmp/bad6.h5" --activation int8:tensor --batches 0
expect 2 "nope.bin" ptq "$tckpt" --out "$tmp/bad7.h5" --activation int8:tensor --data "$tmp/nope.bin"
expect 2 "is already quantized" ptq "$tmp/q-qat.h5" --out "$tmp/bad8.h5"
ls "$tmp"/bad*.h5* >/dev/null 2>&1 && fail "a failed ptq left a file" || ok "no file written by a failed ptq"
expect 2 "quant.weight: unknown quantization type 'int4x'" distill --config "$tmp/qat.yaml" --set run.name=bad9 --set quant.weight=int4x
expect 2 "quant.overrides.*.mlp.nope: the pattern matches no layer" distill --config "$tmp/qat.yaml" --set run.name=bad10 \
  --set 'quant.overrides={"*.mlp.nope": {weight: none}}'
[ ! -e "$tmp/runs/bad9" ] && [ ! -e "$tmp/runs/bad10" ] && ok "no run directory after a bad quant section" || fail "run dir left"
# a quantized checkpoint with a scale off its domain is refused, naming the tensor: by the
# manifest's CRC, and without a manifest (an older kdtrain's file) by the scales' own check
/usr/bin/python3 - "$tmp/q-minmax.h5" "$tmp/q-broken.h5" "$tmp/q-broken-old.h5" <<'PY'
import shutil, sys
import h5py
for path in sys.argv[2:]:
    shutil.copy(sys.argv[1], path)
    with h5py.File(path, "r+") as f:
        d = f["tensors/quantized/model.layers.0.mlp.down_proj.weight.scale"]
        d[0] = -1.0
        if path.endswith("-old.h5"):
            del f["manifest"]
PY
if [ -f "$tmp/q-broken.h5" ]; then
  expect 2 "tensor \"quantized/model.layers.0.mlp.down_proj.weight.scale\": bytes [0, 128) have CRC-32" eval "$tmp/q-broken.h5"
  expect 2 "model.layers.0.mlp.down_proj.weight.scale\" element 0 is -1" eval "$tmp/q-broken-old.h5"
else
  echo "skip: h5py not available for the damaged-checkpoint case"
fi
# The README's ptq example runs on the demo student's shapes (d_model 128, d_ff 352: a group
# must divide both), its formats taken from the README itself.
readme_ptq=$(grep -o -- '--weight [^ ]* --activation [^ ]*' "$root/README.md" | head -1)
train_tiny demo-shape "$tmp/prep" "vocab: 300, d_model: 128, n_layers: 1, n_heads: 4, n_kv_heads: 2, d_ff: 352" 1 16
"$bin" ptq "$tmp/runs/demo-shape/checkpoints/step-00000001.h5" --out "$tmp/demo-shape-q.h5" $readme_ptq --batches 1 \
  >"$tmp/readme-ptq.log" 2>&1 && ok "the README's ptq example ($readme_ptq) runs on the demo student's shapes" \
  || { fail "README ptq example: $readme_ptq"; tail -3 "$tmp/readme-ptq.log"; }
exit $((fails > 0))
