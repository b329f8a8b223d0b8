#!/usr/bin/env bash
# Same seed, same thread count => the same losses bit for bit, run after run (two
# separate processes, teacher pretraining, distillation with a feature loss, accumulation).
# Usage: test_determinism.sh <kdtrain binary> <repo root>
set -eu
bin=$1
root=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for run in a b; do
  OMP_NUM_THREADS=2 "$bin" distill --config "$root/configs/demo-synthetic.yaml" \
    --set train.steps=25 --set distill.teacher_pretrain_steps=20 --set train.grad_accum=2 \
    --set train.threads=2 --loss-log "$tmp/$run.txt" >"$tmp/$run.out"
done
lines=$(wc -l <"$tmp/a.txt")
if [ "$lines" -ne 26 ]; then echo "FAIL: expected 25 steps logged, got $((lines - 1))"; exit 1; fi
if cmp -s "$tmp/a.txt" "$tmp/b.txt"; then
  echo "ok: 25 steps, identical losses, grad norms and learning rates in two runs (%.17g)"
  tail -1 "$tmp/a.txt"
else
  echo "FAIL: the two runs differ:"; diff "$tmp/a.txt" "$tmp/b.txt" | head -10; exit 1
fi
