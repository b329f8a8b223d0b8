#!/usr/bin/env bash
# The one-shot compression study of docs/oneshot.md, on the demo teacher (scripts/demo.sh:
# d_model 256, 4 blocks, d_ff 704, trained on the State of the Union corpus), per seed:
#   quantization, weights only, symmetric: int4 groups of 128, int3 groups of 128 (down_proj
#     at groups of 64 in both: 128 does not divide d_ff 704), int4 per channel; each by
#     round-to-nearest (rtn), GPTQ and AWQ (with its clipping search);
#   W8A8 (int8 per channel, int8 static per-tensor inputs): rtn and SmoothQuant (α 0.5);
#   pruning at 50% of every row and 2:4: magnitude (per row), Wanda and SparseGPT;
# each with SAMPLES calibration sequences of SEQ_LEN tokens of the training split (the
# seed draws them), evaluated on the whole validation split (bits per byte); then each
# result distilled from the dense teacher for STEPS steps (the same seed's data order):
# the quantized ones quantization-aware (the same formats, fake quantization from step 0),
# the pruned ones with their masks held; evaluated again (quantized ones through ptq with
# their QAT state).
# Usage: scripts/oneshot_results.sh [teacher checkpoint]   (after scripts/demo.sh);
#        SEEDS ("1 2"), SAMPLES (128), SEQ_LEN (256), STEPS (100), RUNS (runs/oneshot), OUT,
#        FAMILIES ("quant prune": the quantized rows, W8A8 included, and the pruned ones).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
kd=${KD:-./build/kdtrain}
teacher=${1:-runs/demo/demo-teacher/checkpoints/step-00001000.h5}
seeds=${SEEDS:-1 2}
samples=${SAMPLES:-128}
seq_len=${SEQ_LEN:-256}
steps=${STEPS:-100}
families=${FAMILIES:-quant prune}
runs=${RUNS:-runs/oneshot}
out=${OUT:-$runs/results.md}
data=.cache/sotu/prepared/train.bin
[ -f "$teacher" ] || { echo "oneshot_results.sh: no teacher checkpoint $teacher (run scripts/demo.sh first)" >&2; exit 2; }
mkdir -p "$runs/logs"

json_field() { sed -E "s/.*\"$2\":([0-9.eE+-]+).*/\1/;t;s/.*/nan/" <<<"$1"; }
bpb() { printf "%.4f" "$(json_field "$($kd eval "$1" --no-teacher --tokens 0 --json)" val_bpb)"; }
took() { sed -nE 's/.*, ([0-9.]+) s\)$/\1/p' "$1" | head -1; }
row() { printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$@" | tee -a "$out"; }

# the recovery run: the teacher's own architecture as the student, distilled from it
recover_config() {  # name, extra YAML (a quant section or nothing)
  cat >"$runs/$1.yaml" <<YAML
model: {vocab: 4096, d_model: 256, n_layers: 4, n_heads: 8, n_kv_heads: 4, d_ff: 704, tie_embeddings: true}
teacher: {checkpoint: $teacher}
distill: {alpha: 0.0, temperature: 1.0, divergence: forward_kl}
optim: {lr: 3.0e-4, beta2: 0.95, weight_decay: 0.0, grad_clip: 1.0, warmup_steps: $(( steps < 20 ? 1 : 10 )), schedule: cosine, min_lr_ratio: 0.1}
train: {steps: $steps, batch_size: 16, seq_len: 128, seed: 1, threads: 0, log_every: 50, eval_every: 0,
        eval_tokens: 65536, checkpoint_every: 0}
data: {kind: shards, train: $data, val: .cache/sotu/prepared/val.bin}
run: {dir: $runs, name: $1}
$2
YAML
}
final() { printf '%s/%s/checkpoints/step-%08d.h5' "$runs" "$1" "$steps"; }
# the one-shot result $1 distilled quantization-aware ($2: its quant section), exported by ptq
# with its QAT state; then its row ($3 setting, $4 method)
quant_recovery() {
  recover_config "r$1" "$2"
  $kd distill --config "$runs/r$1.yaml" --set train.seed="$seed" --set train.init_from="$runs/$1.h5" \
    --overwrite >"$runs/logs/r$1.log" 2>&1
  $kd ptq "$(final "r$1")" --out "$runs/r$1.h5" --overwrite >>"$runs/logs/r$1.log" 2>&1
  row quant "$3" "$4" "$seed" "$(bpb "$runs/$1.h5")" "$(bpb "$runs/r$1.h5")" "$(took "$runs/logs/$1.log")"
}

: >"$out"
row "family" "setting" "method" "seed" "one-shot val bpb" "after $steps KD steps" "one-shot s"
row "---" "---" "---" "---" "---" "---" "---"
row "dense" "teacher" "-" "-" "$(bpb "$teacher")" "-" "-"

# quantization: name -> "weight override"
declare -A qfmt=([int4-g128]="int4:g128 int4:g64" [int3-g128]="int3:g128 int3:g64" [int4-channel]="int4:channel -")
want() { case " $families " in *" $1 "*) return 0 ;; esac; return 1; }
for seed in $seeds; do
  want quant && for f in int4-g128 int3-g128 int4-channel; do
    read -r weight down <<<"${qfmt[$f]}"
    ov=(); yov=""
    if [ "$down" != - ]; then ov=(--override "*.down_proj=$down"); yov=", overrides: {\"*.down_proj\": {weight: \"$down\"}}"; fi
    for m in rtn gptq awq; do
      name=q-$f-$m-s$seed
      $kd ptq "$teacher" --out "$runs/$name.h5" --weight "$weight" "${ov[@]}" --activation none --method $m \
        --samples "$samples" --seq-len "$seq_len" --seed "$seed" --overwrite >"$runs/logs/$name.log" 2>&1
      quant_recovery "$name" "quant: {weight: \"$weight\", activation: none, fake_quant_start: 0$yov}" "$f sym" $m
    done
  done
  want quant && for m in rtn smoothquant; do
    name=w8a8-$m-s$seed
    $kd ptq "$teacher" --out "$runs/$name.h5" --weight int8:channel --activation int8:tensor --calibrator minmax \
      --method $m --samples "$samples" --seq-len "$seq_len" --seed "$seed" --overwrite >"$runs/logs/$name.log" 2>&1
    quant_recovery "$name" "quant: {weight: \"int8:channel\", activation: \"int8:tensor\", activation_calibrator: minmax, fake_quant_start: 0}" \
      "W8A8 (static inputs)" $m
  done
  want prune && for pat in 50 2:4; do
    target=(--sparsity 0.5); [ "$pat" = 2:4 ] && target=(--nm 2:4)
    for m in magnitude wanda sparsegpt; do
      name=p-${pat/:/-}-$m-s$seed
      $kd prune "$teacher" --out "$runs/$name.h5" --method $m "${target[@]}" --samples "$samples" --seq-len "$seq_len" \
        --seed "$seed" --overwrite >"$runs/logs/$name.log" 2>&1
      recover_config "r$name" ""
      $kd distill --config "$runs/r$name.yaml" --set train.seed="$seed" --set train.init_from="$runs/$name.h5" \
        --overwrite >"$runs/logs/r$name.log" 2>&1
      row prune "$([ "$pat" = 50 ] && echo 50% || echo 2:4)" $m "$seed" "$(bpb "$runs/$name.h5")" \
        "$(bpb "$(final "r$name")")" "$(took "$runs/logs/$name.log")"
    done
  done
done
echo "table: $out"
