#!/usr/bin/env bash
# One run per run directory (trainer/setup/run_lock.h): while a run holds <run>/lock, a second
# run on the same directory (--resume, --auto-resume, --overwrite) exits 2 naming the holder
# (host, pid) and touches nothing; a lock file left by a killed run (its record, no lock held:
# the kernel dropped the lock with the process) is taken over, saying so.
# Usage: test_run_lock.sh <kdtrain binary> <repo root>
set -u
bin=$1
root=$2
source "$(dirname "$0")/lib.sh"

cat >"$tmp/a.yaml" <<YAML
model: {vocab: 64, d_model: 16, n_layers: 1, n_heads: 2, n_kv_heads: 1, d_ff: 32, tie_embeddings: true}
optim: {lr: 1.0e-3, warmup_steps: 1}
train: {steps: 1000000, batch_size: 2, seq_len: 16, seed: 1, threads: 1, log_every: 1, checkpoint_every: 3}
data: {kind: markov, markov_support: 4}
run: {dir: $tmp/runs, name: a}
YAML
run=$tmp/runs/a

# the holder: a run that keeps going, once it has a checkpoint (so --resume and --auto-resume
# would continue it)
"$bin" train --config "$tmp/a.yaml" >"$tmp/a.log" 2>&1 &
holder=$!
# (a glob, not ls: ls fails when the run prunes a checkpoint between the glob and its stat)
has_checkpoint() { compgen -G "$run/checkpoints/step-*.h5" >/dev/null; }
until=$((SECONDS + 600))
until has_checkpoint || [ "$SECONDS" -ge "$until" ] || ! kill -0 "$holder" 2>/dev/null; do sleep 0.05; done
has_checkpoint || { fail "the holder run wrote no checkpoint"; cat "$tmp/a.log"; }

# expect_refused <what> <args...>: exit 2 naming the holder's pid, within 2 minutes (an
# unfixed kdtrain trains on instead)
expect_refused() {
  local what=$1; shift
  local before
  before=$(ls "$run" "$run/checkpoints" | md5sum)
  timeout 120 "$bin" "$@" >"$tmp/second.out" 2>"$tmp/second.err"
  local rc=$?
  if [ "$rc" = 2 ] && grep -q "pid $holder" "$tmp/second.err" && grep -qF "$run" "$tmp/second.err"; then
    ok "$what while a run holds the directory: exit 2, $(head -1 "$tmp/second.err" | cut -c1-200)"
  else
    fail "$what while a run holds the directory: rc $rc (want 2 naming pid $holder)"; head -5 "$tmp/second.err"
  fi
  kill -0 "$holder" 2>/dev/null || fail "$what: the holder run is gone"
  [ -d "$run/checkpoints" ] && [ -f "$run/metrics.jsonl" ] || fail "$what: the holder's run directory was touched"
}
expect_refused "--resume" train --resume "$run"
expect_refused "--auto-resume" train --config "$tmp/a.yaml" --auto-resume
expect_refused "--overwrite" train --config "$tmp/a.yaml" --overwrite
# the holder's metrics: one line per step, in order (no second writer interleaved)
steps=$(grep '"type":"train"' "$run/metrics.jsonl" | sed -E 's/.*"step":([0-9]+).*/\1/')
[ "$steps" = "$(seq 1 "$(echo "$steps" | wc -l)")" ] && ok "metrics.jsonl: one writer, steps 1..$(echo "$steps" | wc -l)" \
  || fail "metrics.jsonl steps out of order: $(echo $steps | cut -c1-200)"

# the holder dies without releasing anything: its record stays, the kernel dropped the lock
kill -9 "$holder"
wait "$holder" 2>/dev/null
last=$(ls "$run/checkpoints/"step-*.h5 | tail -1 | sed -E 's/.*step-0*([0-9]+)\.h5/\1/')
timeout 120 "$bin" train --resume "$run" --set train.steps=$((last + 2)) >"$tmp/take.out" 2>"$tmp/take.err"
rc=$?
if [ "$rc" = 0 ] && grep -q "previous holder.*pid $holder.*is gone: taking over" "$tmp/take.out" "$tmp/take.err"; then
  ok "stale lock of a killed run: taken over, $(grep -h "is gone" "$tmp/take.out" "$tmp/take.err" | cut -c1-200)"
else
  fail "stale lock: rc $rc"; cat "$tmp/take.err"; grep -h "gone\|lock" "$tmp/take.out" | head -3
fi
# a run that ended normally leaves no holder record behind: the next one takes the lock quietly
timeout 120 "$bin" train --resume "$run" --set train.steps=$((last + 3)) >"$tmp/next.out" 2>&1 || fail "resume after a clean end"
! grep -q "is gone" "$tmp/next.out" && ok "after a clean end: no takeover message" || fail "takeover message after a clean end"

[ "$fails" -eq 0 ] && echo "all run lock checks passed" || { echo "$fails failure(s)"; exit 1; }
