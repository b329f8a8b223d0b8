#!/usr/bin/env bash
# Time and peak memory of each one-shot method (docs/oneshot.md, "Cost") on the teacher shape
# of configs/bench-cpu.yaml (d_model 512, 8 blocks, d_ff 1408, vocab 8192: 34.1M parameters)
# with 128 calibration sequences × 256 tokens of the demo corpus's training split. The model
# is trained for 2 steps first (the costs do not depend on what it learned).
# Usage: scripts/oneshot_cost.sh   (after scripts/demo.sh, for the corpus); THREADS (2),
#        SAMPLES (128), SEQ_LEN (256), RUNS (runs/oneshot-cost), OUT.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
kd=${KD:-./build/kdtrain}
threads=${THREADS:-2}
samples=${SAMPLES:-128}
seq_len=${SEQ_LEN:-256}
runs=${RUNS:-runs/oneshot-cost}
out=${OUT:-$runs/cost.md}
data=.cache/sotu/prepared/train.bin
[ -f "$data" ] || { echo "oneshot_cost.sh: no $data (run scripts/demo.sh first)" >&2; exit 2; }
mkdir -p "$runs"
cat >"$runs/model.yaml" <<YAML
model: {vocab: 8192, d_model: 512, n_layers: 8, n_heads: 8, n_kv_heads: 8, d_ff: 1408, tie_embeddings: false}
optim: {lr: 3.0e-4, warmup_steps: 1}
train: {steps: 2, batch_size: 2, seq_len: $seq_len, seed: 1, threads: $threads, eval_every: 0, checkpoint_every: 0}
data: {kind: shards, train: $data, val: .cache/sotu/prepared/val.bin}
run: {dir: $runs, name: model}
YAML
$kd train --config "$runs/model.yaml" --overwrite >"$runs/model.log" 2>&1
ck=$runs/model/checkpoints/step-00000002.h5
common=(--samples "$samples" --seq-len "$seq_len" --threads "$threads" --overwrite)
: >"$out"
printf '| command | wall s | peak RSS MiB |\n|---|---|---|\n' | tee -a "$out"
measure() {  # label, kdtrain arguments...
  local label=$1
  shift
  /usr/bin/time -f "%e %M" -o "$runs/time" $kd "$@" >"$runs/last.log" 2>&1
  read -r s kib <"$runs/time"
  printf '| %s | %s | %s |\n' "$label" "$s" "$(awk -v k="$kib" 'BEGIN { printf "%.0f", k / 1024 }')" | tee -a "$out"
}
measure "ptq rtn int4:g128 (no calibration)" ptq "$ck" --out "$runs/q.h5" --weight int4:g128 --activation none --method rtn --overwrite --threads "$threads"
measure "ptq gptq int4:g128" ptq "$ck" --out "$runs/q.h5" --weight int4:g128 --activation none --method gptq "${common[@]}"
measure "ptq gptq int4:g128 --act-order --static-groups" ptq "$ck" --out "$runs/q.h5" --weight int4:g128 --activation none --method gptq --act-order --static-groups "${common[@]}"
measure "ptq awq int4:g128 (with clipping)" ptq "$ck" --out "$runs/q.h5" --weight int4:g128 --activation none --method awq "${common[@]}"
measure "ptq smoothquant W8A8 (+16 static calibration batches)" ptq "$ck" --out "$runs/q.h5" --weight int8:channel --activation int8:tensor --method smoothquant "${common[@]}"
measure "ptq sparsegpt 2:4 + int4:g128 (joint)" ptq "$ck" --out "$runs/q.h5" --weight int4:g128 --activation none --method sparsegpt --nm 2:4 "${common[@]}"
measure "prune magnitude 50% (no calibration)" prune "$ck" --out "$runs/p.h5" --method magnitude --sparsity 0.5 --overwrite --threads "$threads"
measure "prune wanda 50%" prune "$ck" --out "$runs/p.h5" --method wanda --sparsity 0.5 "${common[@]}"
measure "prune sparsegpt 50%" prune "$ck" --out "$runs/p.h5" --method sparsegpt --sparsity 0.5 "${common[@]}"
echo "table: $out"
