#!/usr/bin/env bash
# Pruning on the product path (small corpus in tests/data): gradual magnitude pruning in a
# training run, exact resume mid-schedule, inspect's sparsity, pruning then QAT, IMP with
# rewinding (resumed mid-round), depth pruning and its compact export, targets, and bad
# prune sections: exit 2, the key named, no run directory left.
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
  --set quant.activation=int8:token --set quant.fake_quant_start=9 >/dev/null 2>&1 \
  && "$bin" inspect "$tmp/runs/pq/checkpoints/step-00000012.h5" | grep -q "linear layers (q/k/v/o/gate/up/down): 50.00%" \
  && ok "2:4 pruning, then QAT from step 9 (order prune -> distill -> quantize): 50.00% zero" || fail "2:4 + QAT"
expect 2 "quant.fake_quant_start (0) is not after the last pruning step (8)" train --config "$tmp/p.yaml" \
  --set run.name=o1 --set quant.weight=int8:channel
expect 2 "quant.fake_quant_start (9) is not the last pruning step (8)" train --config "$tmp/p.yaml" \
  --set run.name=o2 --set quant.weight=int8:channel --set quant.fake_quant_start=9 --set prune.order=prune_quantize_distill

# iterative magnitude pruning with late rewinding: rounds of 6, 4, 4 steps; every round's
# result evaluated at its sparsity; resumed mid-round 1 bit for bit (the snapshot and the
# masks come from the checkpoint)
imp=(--set run.name=imp --set train.steps=14 --set train.eval_every=0 --set prune.schedule=imp --set prune.rounds=2
     --set prune.round_steps=6 --set prune.rate=0.5 --set prune.rewind=step --set prune.rewind_step=2)
"$bin" train --config "$tmp/p.yaml" "${imp[@]}" >"$tmp/imp.log" 2>&1 || { fail "IMP run"; cat "$tmp/imp.log"; }
sp=$(grep '"type":"eval"' "$tmp/runs/imp/metrics.jsonl" | sed -E 's/.*"sparsity":([0-9.e-]+),"step":([0-9]+).*/\2:\1/' | tr '\n' ' ')
[ "$sp" = "6:0.0 10:0.5 14:0.75 " ] && ok "IMP rounds evaluated at step:sparsity $sp" || fail "IMP eval points: '$sp'"
grep -q "IMP round 1/2 at step 6: 50.00% of the linear weights pruned; weights rewound to step 2" "$tmp/imp.log" \
  && ok "IMP logs each round's pruning and rewind" || { fail "IMP log"; grep prune "$tmp/imp.log"; }
"$bin" inspect "$tmp/runs/imp/checkpoints/step-00000009.h5" | grep -q "IMP: round 1 of 2 .*its sparsity 50.00%; rewind snapshot stored" \
  && ok "inspect: IMP round and rewind snapshot" || { fail "inspect IMP"; "$bin" inspect "$tmp/runs/imp/checkpoints/step-00000009.h5" | grep IMP; }
"$bin" ptq "$tmp/runs/imp/checkpoints/step-00000014.h5" --out "$tmp/imp-q.h5" --weight int8:channel \
  --activation int8:tensor --batches 2 >/dev/null 2>&1 && "$bin" eval "$tmp/imp-q.h5" --json >/dev/null 2>&1 \
  && ok "the IMP ticket quantized by ptq and evaluated" || fail "ptq of a pruned run"
cp -r "$tmp/runs/imp" "$tmp/runs/imp2"
for s in 12 14; do rm "$tmp/runs/imp2/checkpoints/step-$(printf %08d $s).h5"; done
"$bin" train --resume "$tmp/runs/imp2" >/dev/null 2>&1 || fail "IMP resume"
cmp -s <(strip "$tmp/runs/imp/metrics.jsonl") <(strip "$tmp/runs/imp2/metrics.jsonl") \
  && ok "IMP resumed mid-round (step 9): losses equal bit for bit" || fail "IMP resume differs"
cp -r "$tmp/runs/imp" "$tmp/runs/imp3"
rm "$tmp/runs/imp3/checkpoints/step-00000014.h5" "$tmp/runs/imp3/checkpoints/step-00000012.h5"
expect 2 "is in IMP round 1 but the config puts its step 9 in round 0" train --resume "$tmp/runs/imp3" \
  --set prune.round_steps=9 --set prune.rewind_step=5 --set train.steps=17
expect 2 "prune.rewind_step (6) is not inside the first round" train --config "$tmp/p.yaml" "${imp[@]}" \
  --set run.name=i1 --set prune.rewind_step=6
expect 2 "train.steps is 12 but IMP" train --config "$tmp/p.yaml" "${imp[@]}" --set run.name=i2 --set train.steps=12
expect 2 "prune.criterion must be magnitude_global or magnitude_layer" train --config "$tmp/p.yaml" "${imp[@]}" \
  --set run.name=i3 --set prune.criterion=heads

# depth pruning: the less important of the two blocks goes, export drops it
"$bin" train --config "$tmp/p.yaml" --set run.name=depth --set prune.criterion=layers --set prune.sparsity=0.5 \
  --set prune.schedule=oneshot --set prune.at=4 --set prune.depth_score=skip_loss >"$tmp/depth.log" 2>&1 \
  || { fail "depth pruning"; cat "$tmp/depth.log"; }
dck=$tmp/runs/depth/checkpoints/step-00000012.h5
"$bin" export "$dck" --out "$tmp/shallow.h5" --compact >"$tmp/export2.log" 2>&1 \
  && grep -q "removed: 1 of 2 blocks" "$tmp/export2.log" && grep -q "n_layers 1 " "$tmp/export2.log" \
  && ok "depth pruning + export --compact: one block of two removed" || { fail "depth export"; cat "$tmp/export2.log"; }
l1=$("$bin" eval "$dck" --json | sed -E 's/.*"val_loss":([^,}]*).*/\1/')
l2=$("$bin" eval "$tmp/shallow.h5" --json | sed -E 's/.*"val_loss":([^,}]*).*/\1/')
awk -v a="$l1" -v b="$l2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-5 * a) }' \
  && ok "one-block model's val loss $l2 = the depth-masked model's $l1 (within 1e-5)" || fail "depth loss $l2 vs $l1"

# train.init_from: a trained model pruned at step 0 (as Minitron prunes); a model of
# another shape is refused naming the tensor
"$bin" train --config "$tmp/p.yaml" --set run.name=init --set train.init_from="$final" --set prune.criterion=neurons \
  --set prune.sparsity=0.5 --set prune.schedule=oneshot --set prune.at=0 --set train.steps=2 >"$tmp/init.log" 2>&1 \
  && grep -q "init: weights of $final (step 12)" "$tmp/init.log" && ok "train.init_from: the run starts from step 12's weights" \
  || { fail "init_from"; cat "$tmp/init.log"; }
expect 2 "train.init_from: $final has no tensor model.layers.0.mlp.gate_proj.weight of the configured model's shape [32, 32]" \
  train --config "$tmp/p.yaml" --set run.name=init2 --set train.init_from="$final" --set model.d_ff=32
expect 2 "no-such.h5" train --config "$tmp/p.yaml" --set run.name=init3 --set train.init_from="$tmp/no-such.h5"

# targets
"$bin" train --config "$tmp/p.yaml" --set run.name=tgt --set "prune.targets=[model.layers.1.mlp.*]" >/dev/null 2>&1 \
  && "$bin" inspect "$tmp/runs/tgt/checkpoints/step-00000012.h5" >"$tmp/tgt.txt" \
 && grep -q "linear layers (q/k/v/o/gate/up/down): 25.00% (4608 of 18432" "$tmp/tgt.txt" \
  && ! grep -q "layers.0.*sparsity" "$tmp/tgt.txt" && ! grep -q "self_attn.*sparsity" "$tmp/tgt.txt" \
  && ok "prune.targets: only layer 1's MLP pruned (75% of its 6144 weights)" || { fail "targets"; grep -i spars "$tmp/tgt.txt"; }
expect 2 "prune.targets: 'model.embed_tokens.weight' matches model.embed_tokens.weight, which cannot be pruned" \
  train --config "$tmp/p.yaml" --set run.name=t1 --set prune.targets=model.embed_tokens.weight
expect 2 "which the structured criterion heads cannot prune" train --config "$tmp/p.yaml" --set run.name=t2 \
  --set prune.criterion=heads --set "prune.targets=[model.layers.*.mlp.up_proj.weight]"
expect 2 "prune.targets: 'model.layers.9.*' matches no tensor" train --config "$tmp/p.yaml" --set run.name=t3 \
  --set "prune.targets=model.layers.9.*"

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
# the compacted model (head_dim 8 ≠ d_model / n_heads) decodes on the KV cache as by recomputing
g1=$("$bin" generate "$tmp/compact.h5" --prompt "the" --max-new-tokens 12 --temperature 0 2>/dev/null)
g2=$("$bin" generate "$tmp/compact.h5" --prompt "the" --max-new-tokens 12 --temperature 0 --no-kv-cache 2>/dev/null)
[ -n "$g1" ] && [ "$g1" = "$g2" ] && ok "generate on the compacted model: KV cache = recompute" \
  || fail "compacted generate: '$g1' vs '$g2'"
"$bin" inspect "$hck" | grep -q "structures pruned: 0 of 2 blocks \[\]; per block left, KV groups removed \[1 1\], FFN neurons removed \[0 0\]: uniform" \
  && ok "inspect: the head-pruned model is uniform" || { fail "inspect structures"; "$bin" inspect "$hck" | grep structures; }
"$bin" train --config "$tmp/p.yaml" --set run.name=nonuni --set prune.criterion=heads --set prune.schedule=oneshot \
  --set prune.at=4 --set "prune.targets=model.layers.1.self_attn.*" >/dev/null 2>&1 \
  && "$bin" inspect "$tmp/runs/nonuni/checkpoints/step-00000012.h5" | grep -q "KV groups removed \[0 1\].*NON-UNIFORM" \
  && ok "inspect: heads pruned in layer 1 only is marked non-uniform" || fail "non-uniform mark"
expect 2 "layer 1 keeps 1 KV groups and 64 neurons, layer 0 keeps 2 and 64: a non-uniform model" \
  export "$tmp/runs/nonuni/checkpoints/step-00000012.h5" --out "$tmp/nu.h5" --compact
expect 2 "has no whole block, KV group or FFN neuron pruned" export "$final" --out "$tmp/bad.h5" --compact

expect 2 "prune.sparsity is 1" train --config "$tmp/p.yaml" --set run.name=b1 --set prune.sparsity=1
expect 2 "prune.m = 3 does not divide" train --config "$tmp/p.yaml" --set run.name=b2 --set prune.criterion=n_m --set prune.m=3
expect 2 "prune.criterion is 'rows'" train --config "$tmp/p.yaml" --set run.name=b3 --set prune.criterion=rows
expect 2 "prune: end step 1 must come after start step 2" train --config "$tmp/p.yaml" --set run.name=b4 --set prune.end=1
[ ! -e "$tmp/runs/b1" ] && [ ! -e "$tmp/runs/b2" ] && [ ! -e "$tmp/runs/b4" ] && [ ! -e "$tmp/runs/i1" ] \
  && [ ! -e "$tmp/runs/t1" ] && [ ! -e "$tmp/runs/o1" ] && [ ! -e "$tmp/runs/init2" ] && ok "no run directory after a bad prune section" \
  || fail "run directory left"
exit $((fails > 0))
