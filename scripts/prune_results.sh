#!/usr/bin/env bash
# The pruning study of docs/pruning.md, on the demo corpus (State of the Union).
# PART=lth (default): lottery tickets on the d128 model of configs/prune/lth.yaml, trained
#   on labels, for each seed:
#     imp     IMP, 10 rounds of 20% (global magnitude), late rewinding to step 15
#     reinit  the same with random_reinit: each round's mask on a fresh random init
#     rmask   the same with random_mask: a random mask with IMP's per-tensor sparsity
#     oneshot one round pruned straight to 20/50/70/80/90%, rewound to step 15, retrained
#   and, for the first seed, IMP rewound to initialization and IMP with LR rewinding.
#   Every round's result is evaluated on the validation split; the table has the val
#   perplexity per sparsity and method (mean over seeds, and each seed).
# PART=structured: the demo teacher pruned at step 0 (Minitron: from the trained model)
#   by depth (1 of 4 blocks, cosine block importance), FFN neurons and unstructured
#   magnitude, all removing 25% of the linear weights, and by KV groups (2 of 4) against
#   unstructured at the same 13%; each then distilled from the unpruned teacher for
#   STEPS steps; compacted where the structure allows, evaluated (bpb before and after the
#   distillation, eval tokens/s: the median of five evals of the whole validation split, interleaved).
# Runs are resumable: rerunning the script continues unfinished runs (IMP mid-round too)
# and skips finished ones.
# Usage: scripts/prune_results.sh  (after scripts/demo.sh); PART, SEEDS ("1 2"), OUT, STEPS (150)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
kd=${KD:-./build/kdtrain}
py=/usr/bin/python3
seeds=${SEEDS:-1 2}
part=${PART:-lth}
runs=${RUNS:-runs/prune}
mkdir -p "$runs"

ckpt_of() { printf '%s/%s/checkpoints/step-%08d.h5' "$runs" "$1" "$2"; }
# run NAME STEPS COMMAND CONFIG [--set ...]: fresh, resumed, or skipped when finished
run() {
  local name=$1 steps=$2 cmd=$3 cfg=$4
  shift 4
  if [ -f "$(ckpt_of "$name" "$steps")" ]; then return; fi
  if ls "$runs/$name/checkpoints/"*.h5 >/dev/null 2>&1; then
    echo "== $name (resumed)"
    $kd "$cmd" --resume "$runs/$name" >"$runs/$name.log" 2>&1
  else
    echo "== $name"
    $kd "$cmd" --config "$cfg" --set run.dir="$runs" --set run.name="$name" --set train.steps="$steps" "$@" \
      --overwrite >"$runs/$name.log" 2>&1
  fi
}

if [ "$part" = lth ]; then
  out=${OUT:-docs/results/prune-lth.md}
  cfg=configs/prune/lth.yaml
  for seed in $seeds; do
    for v in imp:none reinit:random_reinit rmask:random_mask; do
      run "lth-${v%%:*}-s$seed" 1500 train $cfg --set train.seed=$seed --set prune.control=${v#*:}
    done
    for s in 0.2 0.5 0.7 0.8 0.9; do
      run "lth-oneshot$s-s$seed" 285 train $cfg --set train.seed=$seed --set prune.rounds=1 --set prune.rate=$s
    done
  done
  # the other two rewinds, first seed only: to initialization (rounds of 150 steps), and
  # learning-rate rewinding (weights kept, the LR schedule replayed from step 15)
  first=${seeds%% *}
  run "lth-impinit-s$first" 1650 train $cfg --set train.seed=$first --set prune.rewind=init --set prune.rewind_step=0
  run "lth-implr-s$first" 1500 train $cfg --set train.seed=$first --set prune.rewind=lr
  $py scripts/prune_table.py lth "$runs" >"$out"
  MPLCONFIGDIR=${TMPDIR:-/tmp}/mpl $py scripts/plot.py --sparsity --out docs/results/prune-lth.png \
    $(for v in imp reinit rmask; do for seed in $seeds; do echo "$runs/lth-$v-s$seed"; done; done) \
    "$runs/lth-impinit-s$first" "$runs/lth-implr-s$first" \
    $(for seed in $seeds; do for s in 0.2 0.5 0.7 0.8 0.9; do echo "$runs/lth-oneshot$s-s$seed"; done; done)
  cat "$out"
  exit 0
fi

[ "$part" = structured ] || { echo "prune_results.sh: PART is lth or structured" >&2; exit 2; }
out=${OUT:-docs/results/prune-structured.md}
teacher=${TEACHER:-runs/demo/demo-teacher/checkpoints/step-00001000.h5}
[ -f "$teacher" ] || { echo "prune_results.sh: no teacher checkpoint $teacher (run scripts/demo.sh first)" >&2; exit 2; }
steps=${STEPS:-150}
cfg=configs/prune/structured.yaml
for seed in $seeds; do
  # name criterion sparsity
  for v in "depth layers 0.25" "neurons neurons 0.34" "unstr25 magnitude_global 0.25" "heads heads 0.5" \
           "unstr13 magnitude_global 0.1333"; do
    read -r name crit sp <<<"$v"
    run "st-$name-s$seed" "$steps" distill $cfg --set teacher.checkpoint="$teacher" --set train.init_from="$teacher" \
      --set train.seed=$seed --set prune.criterion=$crit --set prune.sparsity=$sp
    # the same model before distillation: pruned at step 0, one step at lr 1e-12, no decay
    # (the weights move by at most ~1e-12)
    run "st-$name-raw-s$seed" 1 distill $cfg --set teacher.checkpoint="$teacher" --set train.init_from="$teacher" \
      --set train.seed=$seed --set prune.criterion=$crit --set prune.sparsity=$sp --set optim.lr=1e-12 \
      --set optim.weight_decay=0 --set optim.warmup_steps=0
  done
done
$py scripts/prune_table.py structured "$runs" "$teacher" "$kd" >"$out"
cat "$out"
