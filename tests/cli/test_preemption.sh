#!/usr/bin/env bash
# Preemption (trainer/run/preemption.h): SIGUSR1 or SIGTERM mid-run make the run finish its
# step, write a checkpoint, say "preempted: checkpoint at step k: … (SIG…)" and exit 99; the run
# resumed from that checkpoint ends with the uninterrupted run's losses bit for bit. Also
# under mpirun with 2 ranks (mpirun forwards SIGUSR1 to every rank; the ranks agree on
# the step). A second signal during the checkpoint write changes nothing.
# Usage: test_preemption.sh <kdtrain binary> <repo root> <mpirun>
set -u
bin=$1
root=$2
mpirun=$3
source "$(dirname "$0")/lib.sh"
use_mpi
args=(distill --config "$root/configs/demo-synthetic.yaml" --set distill.teacher_pretrain_steps=20
      --set train.steps=300 --set train.log_every=1 --set train.threads=1 --set run.dir="$tmp/runs")

# No timing assumptions beyond generous limits: a busy machine may take minutes where an idle one
# takes seconds. wait_step <log> <pid>: until the run has logged a step (a signal before its
# first step ends it with 99 and no checkpoint, which is not what these checks are about), or
# it has ended, or 10 minutes have passed.
wait_step() {
  local until=$((SECONDS + 600))
  while [ "$SECONDS" -lt "$until" ] && kill -0 "$2" 2>/dev/null; do
    grep -q "^step  *[0-9]*/300" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  fail "no step logged in $1"
}

# preempt <name> <signal> <launcher...>: starts the run, signals it once it has logged a step
preempt() {
  local name=$1 sig=$2; shift 2
  "$@" "$bin" "${args[@]}" --set run.name="$name" >"$tmp/$name.log" 2>&1 &
  local pid=$!
  wait_step "$tmp/$name.log" "$pid"
  kill -"$sig" "$pid"
  wait "$pid"
  PREEMPT_RC=$?
}

for sig in USR1 TERM; do
  "$bin" "${args[@]}" --set run.name=whole >/dev/null 2>&1 || fail "uninterrupted run"
  preempt "cut$sig" "$sig"
  line=$(grep "preempted" "$tmp/cut$sig.log")
  step=$(echo "$line" | sed -nE 's/.*checkpoint at step ([0-9]+).*/\1/p')
  if [ "$PREEMPT_RC" = 99 ] && [ -n "$step" ] && [ "$step" -lt 300 ] && echo "$line" | grep -q "SIG$sig" \
     && [ -f "$tmp/runs/cut$sig/checkpoints/$(printf 'step-%08d.h5' "$step")" ]; then
    ok "SIG$sig: exit 99, $line"
  else
    fail "SIG$sig: rc $PREEMPT_RC, line '$line'"; tail -3 "$tmp/cut$sig.log"
  fi
  "$bin" distill --resume "$tmp/runs/cut$sig" >"$tmp/res$sig.log" 2>&1 || fail "resume after SIG$sig"
  cmp -s <(strip "$tmp/runs/whole/metrics.jsonl") <(strip "$tmp/runs/cut$sig/metrics.jsonl") \
    && ok "resumed after SIG$sig at step $step: the uninterrupted losses bit for bit" \
    || { fail "resume after SIG$sig differs"; diff <(strip "$tmp/runs/whole/metrics.jsonl") <(strip "$tmp/runs/cut$sig/metrics.jsonl") | head -4; }
  rm -rf "$tmp/runs/whole"
done

# A second signal while the checkpoint is written (SIGTERM every 20 ms after the SIGUSR1 until
# the process is gone): it changes nothing, the checkpoint verifies and the resume is exact. The
# record names the first signal: on a busy machine the SIGUSR1 and the first SIGTERMs are often
# pending together when the process next runs (trainer/run/preemption.cpp blocks each while the
# other's handler runs, so SIGUSR1's is not overtaken)
"$bin" "${args[@]}" --set run.name=whole >/dev/null 2>&1 || fail "uninterrupted run"
"$bin" "${args[@]}" --set run.name=twice >"$tmp/twice.log" 2>&1 &
pid=$!
wait_step "$tmp/twice.log" "$pid"
kill -USR1 "$pid"
while kill -TERM "$pid" 2>/dev/null; do sleep 0.02; done
wait "$pid"
rc=$?
ckpt=$(ls "$tmp/runs/twice/checkpoints/"step-*.h5 2>/dev/null | tail -1)
if [ "$rc" = 99 ] && grep -q "preempted: checkpoint at step .*(SIGUSR1)" "$tmp/twice.log" && [ -n "$ckpt" ] \
   && "$bin" inspect --verify "$ckpt" >/dev/null 2>&1 && ! ls "$tmp/runs/twice/checkpoints/"*.tmp >/dev/null 2>&1; then
  ok "SIGUSR1 then SIGTERM every 20 ms: exit 99, $(basename "$ckpt") verifies, no .tmp"
else
  fail "second signal: rc $rc, checkpoint '$ckpt'"; grep -v "^step" "$tmp/twice.log" | tail -3
fi
"$bin" distill --resume "$tmp/runs/twice" >/dev/null 2>&1 || fail "resume after two signals"
cmp -s <(strip "$tmp/runs/whole/metrics.jsonl") <(strip "$tmp/runs/twice/metrics.jsonl") \
  && ok "resumed after two signals: the uninterrupted losses bit for bit" || fail "resume after two signals differs"

# 2 ranks: mpirun forwards SIGUSR1 to both; they stop after the same step
"$mpirun" -np 2 --oversubscribe "$bin" "${args[@]}" --set run.name=whole2 >/dev/null 2>&1 || fail "2-rank run"
preempt cut2 USR1 "$mpirun" -np 2 --oversubscribe
if [ "$PREEMPT_RC" = 99 ] && grep -q "preempted: checkpoint at step .*(SIGUSR1)" "$tmp/cut2.log"; then
  ok "2 ranks, SIGUSR1 to mpirun: exit 99, $(grep preempted "$tmp/cut2.log" | cut -c1-60)"
else
  fail "2 ranks: rc $PREEMPT_RC"; grep -v "^step" "$tmp/cut2.log" | tail -5
fi
"$mpirun" -np 2 --oversubscribe "$bin" distill --resume "$tmp/runs/cut2" >"$tmp/res2.log" 2>&1 || fail "2-rank resume"
cmp -s <(strip "$tmp/runs/whole2/metrics.jsonl") <(strip "$tmp/runs/cut2/metrics.jsonl") \
  && ok "2 ranks resumed: the uninterrupted 2-rank losses bit for bit" || fail "2-rank resume differs"

[ "$fails" -eq 0 ] && echo "all preemption checks passed" || { echo "$fails failure(s)"; exit 1; }
