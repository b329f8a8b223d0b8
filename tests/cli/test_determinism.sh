#!/usr/bin/env bash
# Same seed, same thread count => the same losses bit for bit, run after run (two
# separate processes, teacher pretraining, distillation with a feature loss, accumulation).
# Compares the runs' metrics.jsonl without the wall-clock fields.
# Usage: test_determinism.sh <kdtrain binary> <repo root>
set -u
bin=$1
root=$2
source "$(dirname "$0")/lib.sh"
export OMP_NUM_THREADS=2

for run in a b; do
  "$bin" distill --config "$root/configs/demo-synthetic.yaml" \
    --set train.steps=25 --set distill.teacher_pretrain_steps=20 --set train.grad_accum=2 \
    --set train.threads=2 --set train.eval_every=10 --set run.dir="$tmp/runs" --set run.name=$run \
    >"$tmp/$run.log" 2>&1 || { fail "run $run"; cat "$tmp/$run.log"; }
done
lines=$(losses "$tmp/runs/a" | wc -l)
if [ "$lines" -ne 25 ]; then
  fail "expected 25 train lines, got $lines"
elif cmp -s <(strip "$tmp/runs/a/metrics.jsonl") <(strip "$tmp/runs/b/metrics.jsonl"); then
  ok "25 steps + evals, identical losses, grad norms, learning rates and val losses in two runs"
  strip "$tmp/runs/a/metrics.jsonl" | tail -1
else
  fail "the two runs differ:"; diff <(strip "$tmp/runs/a/metrics.jsonl") <(strip "$tmp/runs/b/metrics.jsonl") | head -10
fi
exit $((fails > 0))
