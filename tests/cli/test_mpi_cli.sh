#!/usr/bin/env bash
# kdtrain under mpirun (one thread per rank) on the small corpus of tests/data:
#  * a 2-rank distillation writes one run directory from rank 0, and its losses equal
#    the 1-rank run's within 1e-5 (relative; docs/distributed.md says why not bit for bit);
#  * a 2-rank run stopped at step 4 and resumed on 2 ranks gives the uninterrupted run's
#    losses bit for bit; resumed on 1 and on 3 ranks, within 1e-5 (a warning says the
#    world size changed);
#  * a teacher on its own rank (parallel.teacher_ranks = 1) serving 1 and 2 student ranks
#    (k = the vocabulary): the losses of the teacher on the student's rank within 1e-5;
#    stopped at step 4 and resumed (same layout): bit for bit; full bf16 logits instead
#    (teacher_sends: logits) with reverse KL and JSD: within 2e-3; a feature loss, another
#    divergence with top-k messages, or no rank left for the student: exit 2;
#  * a tensor-parallel teacher (parallel.tensor_parallel = 2) on 2 ranks, and 2 × 2 (data ×
#    tensor parallel) on 4 ranks: the 1-rank losses (feature loss included) within 1e-5,
#    with the vocab-parallel head and loss (forward KL) and with gathered teacher logits
#    (reverse KL); a split that does not divide the teacher, or the ranks: exit 2;
#  * the watchdog: one rank stopped (SIGSTOP) mid-run makes the other abort the job with
#    exit 3 within the timeout, naming the collective and the late rank; one rank killed
#    (SIGKILL) ends the job non-zero within the timeout; no process is left behind.
# Usage: test_mpi_cli.sh <kdtrain binary> <repo root> <mpirun>
set -u
bin=$1
root=$2
mpirun=$3
source "$(dirname "$0")/lib.sh"
use_mpi
prepare_corpus
train_small_teacher 4
cat >"$tmp/student.yaml" <<YAML
model: {vocab: 300, d_model: 16, n_layers: 1, n_heads: 2, n_kv_heads: 1, d_ff: 32, tie_embeddings: true}
teacher: {checkpoint: $tmp/runs/teacher/checkpoints/step-00000004.h5}
distill: {alpha: 0.5, temperature: 2.0, feature: {beta: 0.1, kind: mse, layers: [[1, 2]]}}
optim: {lr: 3.0e-3, warmup_steps: 2}
train: {steps: 8, batch_size: 6, grad_accum: 2, seq_len: 32, seed: 3, threads: 1, eval_every: 4, checkpoint_every: 4, keep_checkpoints: 5}
data: {kind: shards, train: $tmp/prep/train.bin, val: $tmp/prep/val.bin}
run: {dir: $tmp/runs}
YAML

CLOSE_STEPS=8  # the student runs' train.steps

run_np 1 distill --config "$tmp/student.yaml" --set run.name=np1 >"$tmp/np1.log" 2>&1 || { fail "1-rank distill"; tail -5 "$tmp/np1.log"; }
run_np 2 distill --config "$tmp/student.yaml" --set run.name=np2 >"$tmp/np2.log" 2>&1 || { fail "2-rank distill"; tail -5 "$tmp/np2.log"; }
if grep -q "data parallel: 2 ranks, micro-batch of 6 sequences split 3+3" "$tmp/np2.log" \
   && [ "$(grep -c '^done:' "$tmp/np2.log")" = 1 ] && [ -f "$tmp/runs/np2/checkpoints/step-00000008.h5" ]; then
  ok "2 ranks: one run directory, one log (rank 0), the split announced"
else
  fail "2-rank run output"; tail -5 "$tmp/np2.log"
fi
close "$tmp/runs/np1" "$tmp/runs/np2" 1e-5 && ok "2 ranks give the 1-rank losses within 1e-5" \
  || { fail "2 ranks vs 1"; paste <(losses "$tmp/runs/np1") <(losses "$tmp/runs/np2"); }

# resume from step 4 on 2 ranks (bit for bit), on 1 and on 3 (within tolerance)
for np in 2 1 3; do
  cp -r "$tmp/runs/np2" "$tmp/runs/resume$np"
  rm "$tmp/runs/resume$np/checkpoints/step-00000008.h5"
  run_np "$np" distill --resume "$tmp/runs/resume$np" >"$tmp/resume$np.log" 2>&1 \
    || { fail "resume on $np ranks"; tail -5 "$tmp/resume$np.log"; }
done
if cmp -s <(strip "$tmp/runs/np2/metrics.jsonl") <(strip "$tmp/runs/resume2/metrics.jsonl"); then
  ok "2 ranks stopped at step 4 and resumed on 2: the same losses bit for bit"
else
  fail "2-rank resume differs"; diff <(strip "$tmp/runs/np2/metrics.jsonl") <(strip "$tmp/runs/resume2/metrics.jsonl") | head -4
fi
for np in 1 3; do
  if close "$tmp/runs/np2" "$tmp/runs/resume$np" 1e-5 && grep -q "world_size was '2' and is '$np' now" "$tmp/resume$np.log"; then
    ok "a 2-rank checkpoint resumed on $np ranks: the losses within 1e-5, a warning names the world size"
  else
    fail "2-rank checkpoint resumed on $np ranks"; grep -i warn "$tmp/resume$np.log"
  fi
done

# ---- a teacher on its own rank: top-k with k = V, no feature loss (teacher ranks send no hidden states)
nofeat="--set distill.feature.beta=0 --set distill.top_k=300"
run_np 1 distill --config "$tmp/student.yaml" $nofeat --set run.name=local >"$tmp/local.log" 2>&1 || fail "local teacher"
for np in 2 3; do
  run_np "$np" distill --config "$tmp/student.yaml" $nofeat --set parallel.teacher_ranks=1 --set run.name="remote$np" \
    >"$tmp/remote$np.log" 2>&1 || { fail "teacher rank with $np ranks"; tail -5 "$tmp/remote$np.log"; }
  if close "$tmp/runs/local" "$tmp/runs/remote$np" 1e-5 && grep -q "teacher: on its own rank $((np - 1))" "$tmp/remote$np.log"; then
    ok "$np ranks, the last one the teacher's: the losses of a teacher on the student's rank within 1e-5"
  else
    fail "teacher rank, $np ranks"; paste <(losses "$tmp/runs/local") <(losses "$tmp/runs/remote$np")
  fi
done
cp -r "$tmp/runs/remote3" "$tmp/runs/remote3r" && rm "$tmp/runs/remote3r/checkpoints/step-00000008.h5"
run_np 3 distill --resume "$tmp/runs/remote3r" >"$tmp/remote3r.log" 2>&1 || { fail "resume with a teacher rank"; tail -5 "$tmp/remote3r.log"; }
cmp -s <(strip "$tmp/runs/remote3/metrics.jsonl") <(strip "$tmp/runs/remote3r/metrics.jsonl") \
  && ok "2 students + 1 teacher rank stopped at step 4 and resumed: the same losses bit for bit" \
  || fail "resume with a teacher rank differs"
# full logits in bfloat16 (parallel.teacher_sends: logits): any divergence; bf16 rounding of
# the teacher's logits (8 mantissa bits) keeps the losses within 2e-3
for div in reverse_kl jsd; do
  run_np 1 distill --config "$tmp/student.yaml" $nofeat --set distill.divergence=$div --set run.name="loc_$div" \
    >/dev/null 2>&1 || fail "local $div"
  run_np 2 distill --config "$tmp/student.yaml" $nofeat --set distill.divergence=$div --set parallel.teacher_ranks=1 \
    --set parallel.teacher_sends=logits --set run.name="full_$div" >"$tmp/full_$div.log" 2>&1 || fail "full logits $div"
  close "$tmp/runs/loc_$div" "$tmp/runs/full_$div" 2e-3 && grep -q "full logits in bfloat16" "$tmp/full_$div.log" \
    && ok "$div from a teacher rank sending full bf16 logits: the local teacher's losses within 2e-3" \
    || { fail "full logits $div"; paste <(losses "$tmp/runs/loc_$div") <(losses "$tmp/runs/full_$div"); }
done
mpi_expect() {  # mpi_expect <np> <stderr substring> <kdtrain args...>: exit 2 (mpirun passes it on)
  local np=$1 want=$2; shift 2
  run_np "$np" "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
  if [ "$rc" -eq 2 ] && grep -qF -- "$want" "$tmp/err"; then ok "$np ranks: exit 2: $(grep -m1 error "$tmp/err" | cut -c1-120)"
  else fail "$np ranks, kdtrain $* -> rc $rc, wanted 2 and: $want"; head -3 "$tmp/err"; fi
}
mpi_expect 2 "distill.feature.beta > 0 needs the teacher's hidden states; teacher ranks" \
  distill --config "$tmp/student.yaml" --set parallel.teacher_ranks=1 --set run.name=bad
mpi_expect 2 "distill.divergence is jsd; teacher ranks" distill --config "$tmp/student.yaml" $nofeat \
  --set parallel.teacher_ranks=1 --set distill.divergence=jsd --set run.name=bad
mpi_expect 2 "parallel.teacher_ranks is 2 but the job has 2 rank(s)" distill --config "$tmp/student.yaml" $nofeat \
  --set parallel.teacher_ranks=2 --set run.name=bad

# ---- a tensor-parallel teacher (2 KV groups, d_ff 64: TP 2 divides them)
for np in 2 4; do
  run_np "$np" distill --config "$tmp/student.yaml" --set parallel.tensor_parallel=2 --set run.name="tp$np" \
    >"$tmp/tp$np.log" 2>&1 || { fail "tensor parallel on $np ranks"; tail -5 "$tmp/tp$np.log"; }
  if close "$tmp/runs/np1" "$tmp/runs/tp$np" 1e-5 && grep -q "tensor-parallel over 2 ranks" "$tmp/tp$np.log"; then
    ok "$np ranks, teacher tensor-parallel over 2: the 1-rank losses within 1e-5 (feature loss included)"
  else
    fail "tensor parallel, $np ranks"; paste <(losses "$tmp/runs/np1") <(losses "$tmp/runs/tp$np")
  fi
done
grep -q "student head and KD loss vocab-parallel" "$tmp/tp2.log" && ok "forward KL: the student head and loss run vocab-parallel" \
  || fail "the vocab-parallel loss was not used"
# a tensor-parallel teacher held in bfloat16: each rank's shard in bf16; the 1-rank bf16 run's losses
run_np 1 distill --config "$tmp/student.yaml" --set teacher.bf16=true --set run.name=bf1 >/dev/null 2>&1 || fail "bf16 1 rank"
run_np 2 distill --config "$tmp/student.yaml" --set teacher.bf16=true --set parallel.tensor_parallel=2 \
  --set run.name=bf2 >"$tmp/bf2.log" 2>&1 || { fail "bf16 tensor parallel"; tail -3 "$tmp/bf2.log"; }
close "$tmp/runs/bf1" "$tmp/runs/bf2" 1e-5 && grep -q "linear layers in bfloat16" "$tmp/bf2.log" \
  && ok "a bf16 teacher tensor-parallel over 2 ranks: the 1-rank bf16 losses within 1e-5" || fail "bf16 TP"
# reverse KL: the teacher's logits are gathered instead; the same losses as 1 rank
run_np 1 distill --config "$tmp/student.yaml" --set distill.divergence=reverse_kl --set run.name=rkl1 >/dev/null 2>&1 || fail "rkl 1 rank"
run_np 2 distill --config "$tmp/student.yaml" --set distill.divergence=reverse_kl --set parallel.tensor_parallel=2 \
  --set run.name=rkl2 >"$tmp/rkl2.log" 2>&1 || fail "rkl tensor parallel"
close "$tmp/runs/rkl1" "$tmp/runs/rkl2" 1e-5 && grep -q "teacher logits gathered per chunk" "$tmp/rkl2.log" \
  && ok "reverse KL with a tensor-parallel teacher (logits gathered): the 1-rank losses within 1e-5" || fail "rkl TP"
mpi_expect 3 "parallel.tensor_parallel 2 does not divide the job's 3 ranks" distill --config "$tmp/student.yaml" \
  --set parallel.tensor_parallel=2 --set run.name=bad
mpi_expect 4 "parallel.tensor_parallel: parallel.tensor_parallel 4 must divide the teacher's n_kv_heads (2)" \
  distill --config "$tmp/student.yaml" --set parallel.tensor_parallel=4 --set run.name=bad

# ---- the watchdog. A long run (many steps); once it has logged a step, one rank is
# stopped or killed. The rank's pid comes from its environment (OMPI_COMM_WORLD_RANK and
# a tag of this test), so no other process on the machine is touched.
tag=kdtest-$$-$RANDOM
env_of() { cat "/proc/$1/environ" 2>/dev/null | tr '\0' '\n'; }
tagged() { for p in $(ls /proc | grep -E '^[0-9]+$'); do env_of "$p" | grep -qx "KD_TEST_TAG=$tag" && echo "$p"; done; }
rank_pid() {  # the pid of world rank $1 of this test's job
  for p in $(tagged); do env_of "$p" | grep -qx "OMPI_COMM_WORLD_RANK=$1" && { echo "$p"; return; }; done
}
left_behind() { for p in $(tagged); do [ "$p" != $$ ] && echo "$p $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"; done; }
watch_case() {  # watch_case <signal> <name> [kdtrain options...]
  local sig=$1 name=$2; shift 2
  KD_TEST_TAG=$tag "$mpirun" -np 2 --oversubscribe -x KD_TEST_TAG "$bin" distill --config "$tmp/student.yaml" \
    --set run.name="$name" --set train.steps=100000 --set train.log_every=1 --set train.eval_every=0 \
    --set train.checkpoint_every=0 --set parallel.watchdog_min_s=3 --set parallel.watchdog_step_factor=5 "$@" \
    >"$tmp/$name.log" 2>&1 &
  local job=$!
  for _ in $(seq 300); do grep -q "^step  *[0-9]" "$tmp/$name.log" 2>/dev/null && break; sleep 0.1; done
  local pid
  pid=$(rank_pid 1)
  [ -n "$pid" ] || { fail "$name: no pid for rank 1"; kill -9 $job; return; }
  local t0=$SECONDS
  kill -"$sig" "$pid"
  local rc=0
  # the watchdog limit is 3 s (+ the grace to ask the other ranks); 30 s means it hung
  for _ in $(seq 300); do kill -0 $job 2>/dev/null || break; sleep 0.1; done
  if kill -0 $job 2>/dev/null; then
    fail "$name: the job still runs 30 s after SIG$sig"; kill -9 $job; kill -9 "$pid" 2>/dev/null
  fi
  wait $job; rc=$?
  WATCH_RC=$rc WATCH_S=$((SECONDS - t0))
  sleep 1
  local left
  left=$(left_behind)
  [ -z "$left" ] || fail "$name: processes left behind: $left"
}

watch_case STOP hang
# within the limit: 3 s of waiting + 1 s asking the other rank + the launcher's teardown
if [ "$WATCH_RC" = 3 ] && [ "$WATCH_S" -le 10 ] && grep -q "watchdog: .* #[0-9]* in the world (2 ranks) waited" "$tmp/hang.log" \
   && grep -q "rank 1 (world rank 1 on .*, pid [0-9]*): LATE" "$tmp/hang.log"; then
  ok "rank 1 stopped: the job exits 3 after ${WATCH_S} s: $(grep -m1 'watchdog:' "$tmp/hang.log" | cut -c1-110)"
else
  fail "SIGSTOP: rc $WATCH_RC after ${WATCH_S} s"; grep -v "^step" "$tmp/hang.log" | tail -8
fi

# the teacher rank stopped: the student waits for its targets (a recv) and names it
watch_case STOP teacher_hang $nofeat --set parallel.teacher_ranks=1
if [ "$WATCH_RC" = 3 ] && [ "$WATCH_S" -le 10 ] && grep -q "watchdog: recv from rank 1 (after collective #[0-9]*) in the world (2 ranks)" "$tmp/teacher_hang.log" \
   && grep -q "rank 1 (world rank 1 on .*): LATE" "$tmp/teacher_hang.log"; then
  ok "the teacher rank stopped: exit 3 after ${WATCH_S} s: $(grep -m1 'watchdog:' "$tmp/teacher_hang.log" | cut -c1-90)"
else
  fail "teacher rank SIGSTOP: rc $WATCH_RC after ${WATCH_S} s"; grep -v "^step" "$tmp/teacher_hang.log" | tail -8
fi

watch_case KILL killed
if [ "$WATCH_RC" != 0 ] && [ "$WATCH_S" -le 15 ]; then
  ok "rank 1 killed: the job ends with rc $WATCH_RC after ${WATCH_S} s: $(grep -v '^step' "$tmp/killed.log" | grep -m1 -i 'kill\|exit\|signal' | cut -c1-110)"
else
  fail "SIGKILL: rc $WATCH_RC after ${WATCH_S} s"; tail -5 "$tmp/killed.log"
fi

# ---- kdtrain validate --ranks: the memory per rank of each layout
"$bin" validate "$tmp/student.yaml" --ranks 4 --set parallel.tensor_parallel=2 >"$tmp/mem.txt" 2>&1
grep -q "memory per rank (estimate), 4 rank(s): 2 data-parallel x 2 tensor-parallel" "$tmp/mem.txt" \
  && grep -q "AdamW moments (2 x fp32, 1/2 shard)" "$tmp/mem.txt" && grep -q "teacher shard (fp32, 1/2 of the blocks" "$tmp/mem.txt" \
  && ok "validate --ranks 4, TP 2: $(grep -m1 'total' "$tmp/mem.txt" | tr -s ' ')" || { fail "validate --ranks"; tail -9 "$tmp/mem.txt"; }
"$bin" validate "$tmp/student.yaml" --ranks 3 $nofeat --set parallel.teacher_ranks=1 >"$tmp/mem.txt" 2>&1
grep -q "total, a teacher rank" "$tmp/mem.txt" && ! grep -q "^  teacher (fp32)" "$tmp/mem.txt" \
  && ok "validate with a teacher rank: the student ranks hold no teacher" || { fail "validate teacher ranks"; tail -9 "$tmp/mem.txt"; }
expect 2 "--ranks 1: parallel.teacher_ranks is 1" validate "$tmp/student.yaml" --ranks 1 $nofeat --set parallel.teacher_ranks=1

[ "$fails" -eq 0 ] && echo "all MPI CLI checks passed" || { echo "$fails failure(s)"; exit 1; }
