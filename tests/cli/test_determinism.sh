#!/usr/bin/env bash
# Same seed, same thread count => the same losses bit for bit, run after run (two
# separate processes, teacher pretraining, distillation with a feature loss, accumulation).
# Compares the runs' metrics.jsonl without the wall-clock fields.
# Usage: test_determinism.sh <kdtrain binary> <repo root>
set -eu
bin=$1
root=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for run in a b; do
  OMP_NUM_THREADS=2 "$bin" distill --config "$root/configs/demo-synthetic.yaml" \
    --set train.steps=25 --set distill.teacher_pretrain_steps=20 --set train.grad_accum=2 \
    --set train.threads=2 --set train.eval_every=10 --set run.dir="$tmp" --set run.name=$run >"$tmp/$run.out"
  sed -E 's/"(time_s|tokens_per_s|comm_s)":[^,}]*,?//g' "$tmp/$run/metrics.jsonl" >"$tmp/$run.txt"
done
lines=$(grep -c '"type":"train"' "$tmp/a.txt")
if [ "$lines" -ne 25 ]; then echo "FAIL: expected 25 train lines, got $lines"; exit 1; fi
if cmp -s "$tmp/a.txt" "$tmp/b.txt"; then
  echo "ok: 25 steps + evals, identical losses, grad norms, learning rates and val losses in two runs"
  tail -1 "$tmp/a.txt"
else
  echo "FAIL: the two runs differ:"; diff "$tmp/a.txt" "$tmp/b.txt" | head -10; exit 1
fi
