#!/usr/bin/env bash
# Pruning on the product path (small corpus in tests/data): gradual magnitude pruning in a
# training run, exact resume mid-schedule, inspect's sparsity, QAT + pruning together, and
# bad prune sections: exit 2, the key named, no run directory left.
# Usage: test_prune_cli.sh <kdtrain binary> <repo root>
set -u
bin=$1
root=$2
source "$(dirname "$0")/lib.sh"
export OMP_NUM_THREADS=2

prepare_corpus
cat >"$tmp/p.yaml" <<YAML
model: {vocab: 300, d_model: 32, n_layers: 2, n_heads: 4, n_kv_heads: 2, d_ff: 64, tie_embeddings: true}
optim: {lr: 3.0e-3, warmup_steps: 2}
train: {steps: 12, batch_size: 4, seq_len: 32, seed: 3, threads: 2, log_every: 4, eval_every: 6, checkpoint_every: 3, keep_checkpoints: 10}
data: {kind: shards, train: $tmp/prep/train.bin, val: $tmp/prep/val.bin}
run: {dir: $tmp/runs, name: pruned}
prune: {criterion: magnitude_global, sparsity: 0.75, schedule: gradual, start: 2, end: 8, every: 2}
YAML
"$bin" train --config "$tmp/p.yaml" >"$tmp/p.log" 2>&1 || { fail "pruned training"; cat "$tmp/p.log"; }
final=$tmp/runs/pruned/checkpoints/step-00000012.h5
"$bin" inspect "$final" | grep -q "sparsity of the linear layers (q/k/v/o/gate/up/down): 75.00%" \
  && ok "inspect: the linear layers are 75.00% zero, as configured" || { fail "sparsity"; "$bin" inspect "$final" | grep sparsity | tail -2; }
cp -r "$tmp/runs/pruned" "$tmp/runs/res"
for s in 6 9 12; do rm "$tmp/runs/res/checkpoints/step-$(printf %08d $s).h5"; done
"$bin" train --resume "$tmp/runs/res" >/dev/null 2>&1 || fail "resume"
cmp -s <(strip "$tmp/runs/pruned/metrics.jsonl") <(strip "$tmp/runs/res/metrics.jsonl") \
  && ok "resumed mid-schedule (step 3): losses equal bit for bit" || fail "pruned resume differs"
"$bin" train --config "$tmp/p.yaml" --set run.name=pq --set prune.criterion=n_m --set quant.weight=int8:channel \
  --set quant.activation=int8:token >/dev/null 2>&1 \
  && "$bin" inspect "$tmp/runs/pq/checkpoints/step-00000012.h5" | grep -q "linear layers (q/k/v/o/gate/up/down): 50.00%" \
  && ok "2:4 pruning with QAT in one run: 50.00% zero" || fail "2:4 + QAT"

# structured pruning -> export --compact: a smaller model, the same validation loss
"$bin" train --config "$tmp/p.yaml" --set run.name=heads --set prune.criterion=heads --set prune.sparsity=0.5 \
  --set prune.schedule=oneshot --set prune.at=4 >/dev/null 2>&1 || fail "head pruning"
hck=$tmp/runs/heads/checkpoints/step-00000012.h5
"$bin" export "$hck" --out "$tmp/compact.h5" --compact >"$tmp/export.log" 2>&1 \
  && grep -q "n_heads 2 n_kv_heads 1 head_dim 8" "$tmp/export.log" && ok "export --compact: $(sed -n 's/.*| parameters/parameters/p' "$tmp/export.log")" \
  || { fail "export --compact"; cat "$tmp/export.log"; }
l1=$("$bin" eval "$hck" --json | sed -E 's/.*"val_loss":([^,}]*).*/\1/')
l2=$("$bin" eval "$tmp/compact.h5" --json | sed -E 's/.*"val_loss":([^,}]*).*/\1/')
awk -v a="$l1" -v b="$l2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-5 * a) }' \
  && ok "compacted model's val loss $l2 = the masked model's $l1 (within 1e-5)" || fail "compact loss $l2 vs $l1"
expect 2 "has no whole KV group or FFN neuron pruned" export "$final" --out "$tmp/bad.h5" --compact

expect 2 "prune.sparsity is 1" train --config "$tmp/p.yaml" --set run.name=b1 --set prune.sparsity=1
expect 2 "prune.m = 3 does not divide" train --config "$tmp/p.yaml" --set run.name=b2 --set prune.criterion=n_m --set prune.m=3
expect 2 "prune.criterion is 'rows'" train --config "$tmp/p.yaml" --set run.name=b3 --set prune.criterion=rows
expect 2 "prune: end step 1 must come after start step 2" train --config "$tmp/p.yaml" --set run.name=b4 --set prune.end=1
[ ! -e "$tmp/runs/b1" ] && [ ! -e "$tmp/runs/b2" ] && [ ! -e "$tmp/runs/b4" ] && ok "no run directory after a bad prune section" \
  || fail "run directory left"
exit $((fails > 0))
