#!/usr/bin/env bash
# The quantization study of docs/quantization.md, on the demo corpus (State of the Union),
# for each seed:
#   fp32 student: KD from the demo teacher for STEPS steps, then FT more steps (the baseline)
#   PTQ of that student at W8A8, W4A16 (g128), W4A8 (g128), FP8 with each calibrator
#   QAT + KD fine-tuning: the STEPS-step student resumed with a quant section for the same
#     FT steps (fake quantization and observers from the first of them, LSQ scales on
#     integer grids, observers frozen halfway), exported by kdtrain ptq with its quantizers
# So PTQ and QAT start from the same float weights and see the same number of steps.
# Every linear layer is quantized, the output head too (tied: the embedding table), so
# sizes and speeds are those of the whole model. Each model is evaluated on the whole
# validation split (bits per byte), with its weights' size and eval tokens/s (integer GEMMs
# where the format has them).
# RECIPE=scratch instead trains the QAT students from scratch for STEPS steps (fake
# quantization from STEPS/3, observers frozen at 2·STEPS/3) against the STEPS-step student.
# Usage: scripts/quant_results.sh [teacher checkpoint]   (after scripts/demo.sh); STEPS
#        (300), FT (100), SEEDS ("1 2"), BATCHES (16 calibration batches), RECIPE, OUT;
#        FORMATS (a subset of "W8A8 W4A16 W4A8 FP8"), LSQ=0 (straight-through estimator
#        instead of learned scales), PTQ=0 (QAT rows only).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
kd=${KD:-./build/kdtrain}
teacher=${1:-runs/demo/demo-teacher/checkpoints/step-00001000.h5}
steps=${STEPS:-300}
ft=${FT:-100}
seeds=${SEEDS:-1 2}
batches=${BATCHES:-16}
recipe=${RECIPE:-finetune}
runs=${RUNS:-runs/quant}
out=${OUT:-$runs/results-$recipe.md}
mkdir -p "$runs"
[ -f "$teacher" ] || { echo "quant_results.sh: no teacher checkpoint $teacher (run scripts/demo.sh first)" >&2; exit 2; }
common=(--set run.dir=$runs --set teacher.checkpoint=$teacher --set train.steps=$steps --overwrite)

# format name -> "weight activation"
declare -A formats=([W8A8]="int8:channel int8:tensor" [W4A16]="int4:g128 none" [W4A8]="int4:g128 int8:tensor"
                    [FP8]="fp8_e4m3:channel fp8_e4m3:tensor")
read -r -a order <<<"${FORMATS:-W8A8 W4A16 W4A8 FP8}"

json_field() { sed -E "s/.*\"$2\":([0-9.eE+-]+).*/\1/;t;s/.*/nan/" <<<"$1"; }
evaluate() {  # checkpoint -> "bpb tokens/s"
  local j
  j=$($kd eval "$1" --no-teacher --tokens 0 --json)
  echo "$(json_field "$j" val_bpb) $(json_field "$j" tokens_per_s)"
}
size_mib() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.2f", b / 1048576 }'; }
weights_mib() { sed -nE 's/.*-> ([0-9.]+) MiB \(.*/\1/p' "$1"; }
row() { printf '| %s | %s | %s | %s | %s | %s |\n' "$@" | tee -a "$out"; }

ckpt_of() { printf '%s/%s/checkpoints/step-%08d.h5' $runs "$1" "$2"; }
params_mib() { awk -v p="$($kd inspect "$1" | sed -nE 's/^tensors\/model: [0-9]+ tensors, ([0-9]+) values/\1/p')" 'BEGIN { printf "%.2f", 4 * p / 1048576 }'; }
: >"$out"
row "model" "method" "seed" "val bpb" "weights MiB" "eval tok/s"
row "---" "---" "---" "---" "---" "---"
for seed in $seeds; do
  base=fp32-s$seed
  [ -f "$(ckpt_of $base $steps)" ] || \
    $kd distill --config configs/quant/student.yaml "${common[@]}" --set train.seed=$seed --set run.name=$base >/dev/null
  if [ "$recipe" = finetune ]; then
    total=$((steps + ft))
    ck=$(ckpt_of $base-$total $total)
    if [ ! -f "$ck" ]; then
      rm -rf "$runs/$base-$total" && cp -r "$runs/$base" "$runs/$base-$total"
      $kd distill --resume "$runs/$base-$total" --set train.steps=$total --set train.checkpoint_every=$total >/dev/null
    fi
    label="KD $total steps"
  else
    ck=$(ckpt_of $base $steps)
    label="KD $steps steps"
  fi
  read -r bpb tps < <(evaluate "$ck")
  row "fp32" "$label" "$seed" "$bpb" "$(params_mib "$ck")" "$tps"
  for f in "${order[@]}"; do
    [ "${PTQ:-1}" = 0 ] && break
    read -r w a <<<"${formats[$f]}"
    if [ "$a" = none ]; then cals=(minmax mse); else cals=(minmax moving_average percentile mse kl); fi
    for cal in "${cals[@]}"; do
      q=$runs/ptq-$recipe-$f-$cal-s$seed.h5
      if [ "$a" = none ]; then
        $kd ptq "$ck" --out "$q" --overwrite --head --weight "$w" --activation none --weight-calibrator "$cal" >"$q.log"
      else
        $kd ptq "$ck" --out "$q" --overwrite --head --weight "$w" --activation "$a" --calibrator "$cal" --batches "$batches" >"$q.log"
      fi
      read -r bpb tps < <(evaluate "$q")
      row "$f" "PTQ $cal" "$seed" "$bpb" "$(weights_mib "$q.log")" "$tps"
    done
  done
  for f in "${order[@]}"; do
    read -r w a <<<"${formats[$f]}"
    lsq=true
    [[ $w == fp8* || ${LSQ:-1} = 0 ]] && lsq=false  # LSQ is for integer grids
    qset=(--set quant.weight="$w" --set quant.activation="$a" --set quant.learn_scales=$lsq --set quant.head=true)
    if [ "$recipe" = finetune ]; then
      name=qatft-$f-s$seed$([ $lsq = false ] && echo -ste || true)
      rm -rf "$runs/$name" && cp -r "$runs/$base" "$runs/$name"
      $kd distill --resume "$runs/$name" --set train.steps=$total --set train.checkpoint_every=$total "${qset[@]}" \
        --set quant.fake_quant_start=$steps --set quant.freeze_observers=$((steps + ft / 2)) >/dev/null
      ck=$(ckpt_of $name $total)
      method="QAT+KD fine-tune, $ft steps"
    else
      name=qat-$f-s$seed$([ $lsq = false ] && echo -ste || true)
      $kd distill --config configs/quant/student.yaml "${common[@]}" --set train.seed=$seed --set run.name=$name \
        "${qset[@]}" --set quant.fake_quant_start=$((steps / 3)) --set quant.freeze_observers=$((2 * steps / 3)) >/dev/null
      ck=$(ckpt_of $name $steps)
      method="QAT+KD from scratch"
    fi
    q=$runs/$name.h5
    $kd ptq "$ck" --out "$q" --overwrite >"$q.log"
    read -r bpb tps < <(evaluate "$q")
    row "$f" "$method$([ $lsq = true ] && echo ', LSQ' || echo ', STE')" "$seed" "$bpb" "$(weights_mib "$q.log")" "$tps"
  done
done
echo "rows written to $out"
