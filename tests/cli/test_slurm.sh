#!/usr/bin/env bash
# kdtrain under a real SLURM cluster (scripts/ci/slurm-cluster.sh, started by the CTest
# fixture `slurm`): skipped, with the reason, when the cluster could not start.
# 1. a 2-rank distill job (scripts/slurm/distill.sbatch, srun --mpi=pmix) runs to completion;
#    and a ptq job of its checkpoint (scripts/slurm/ptq.sbatch);
# 2. the same job preempted with `scancel --signal=USR1`: kdtrain logs "preempted: checkpoint
#    at step k", exits 99, the script requeues the job, which runs again with
#    SLURM_RESTART_COUNT=1, resumes and ends with the uninterrupted run's losses bit for bit;
# 3. the same with KDTRAIN_LAUNCHER=mpirun, the signal sent to the batch shell
#    (`scancel --batch`), which forwards it to mpirun;
# 4. a sweep of 4 points runs as one array job (at most 2 at a time); --summary prints the table;
# 5. a sweep with one invalid point fails before anything is submitted, naming point and key.
# Usage: test_slurm.sh <kdtrain binary> <repo root> <cluster dir>
set -u
bin=$(realpath "$1")
root=$(realpath "$2")
cluster=$(realpath "$3")
source "$(dirname "$0")/lib.sh"
if [ -f "$cluster/unavailable" ] || [ ! -f "$cluster/env" ]; then
  echo "SKIP: no SLURM cluster: $(cat "$cluster/unavailable" 2>/dev/null || echo "not started (run by the slurm fixture)")"
  exit 77
fi
source "$cluster/env"
export KDTRAIN="$bin" KDTRAIN_ROOT="$root"
cd "$tmp"
cfg=(configs/demo-synthetic.yaml --set distill.teacher_pretrain_steps=20 --set train.steps=600
     --set optim.warmup_steps=2 --set train.log_every=20 --set run.dir="$tmp/runs")
cp -r "$root/configs" "$tmp/"

# job_state JOB: the state once it is final (waits up to 180 s)
job_state() {
  local s
  for _ in $(seq 360); do
    s=$(scontrol show job "$1" 2>/dev/null | grep -oE 'JobState=[A-Z_]+' | cut -d= -f2)
    case $s in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) break ;; "") s=GONE; break ;; esac
    sleep 0.5
  done
  echo "$s"
}
same_losses() { cmp -s <(strip "$tmp/runs/$1/metrics.jsonl") <(strip "$tmp/runs/$2/metrics.jsonl"); }

# 1. to completion
sbatch --wait -n 2 -c 1 -o whole.out "$root/scripts/slurm/distill.sbatch" "${cfg[@]}" --set run.name=whole >/dev/null
rc=$?
if [ "$rc" = 0 ] && grep -q "SLURM_RESTART_COUNT=0: distill .* on 2 rank(s) x 1 thread(s) via srun" whole.out \
   && grep -q "done: 600 steps" whole.out && grep -q "data parallel: 2 ranks" whole.out; then
  ok "2-rank distill job: sbatch --wait exit 0, $(grep '^done' whole.out | cut -c1-60)"
else
  fail "2-rank distill job: rc $rc"; tail -5 whole.out
fi

# 1b. ptq of its checkpoint as a job of its own
sbatch --wait -c 2 -o ptq.out "$root/scripts/slurm/ptq.sbatch" "$tmp/runs/whole/checkpoints/step-00000600.h5" \
  --out "$tmp/q.h5" --weight int4:g8 >/dev/null && [ -s q.h5 ] && grep -q "on 1 rank(s) x 2 thread(s)" ptq.out \
  && ok "ptq job: $(grep -m1 'weights' ptq.out | sed 's/^ *//' | cut -c1-80)" || { fail "ptq job"; tail -5 ptq.out; }

# 2./3. preempted, requeued, resumed
preempt() {  # preempt NAME LAUNCHER SCANCEL_FLAGS...
  local name=$1 launcher=$2; shift 2
  local job
  job=$(KDTRAIN_LAUNCHER=$launcher sbatch --parsable -n 2 -c 1 -o "$name.out" "$root/scripts/slurm/distill.sbatch" \
        "${cfg[@]}" --set run.name="$name")
  for _ in $(seq 600); do grep -q "^step" "$name.out" 2>/dev/null && break; sleep 0.1; done
  scancel "$@" --signal=USR1 "$job"
  local state
  state=$(job_state "$job")
  local restarts
  restarts=$(scontrol show job "$job" | grep -oE 'Restarts=[0-9]+' | cut -d= -f2)
  local line
  line=$(grep -m1 "preempted: checkpoint at step" "$name.out")
  if [ "$state" = COMPLETED ] && [ "$restarts" = 1 ] && [ -n "$line" ] \
     && grep -q "kdtrain: preempted: requeueing job $job" "$name.out" \
     && grep -q "SLURM_RESTART_COUNT=1: distill" "$name.out" && grep -q "^resumed from .* at step" "$name.out" \
     && grep -q "done: 600 steps" "$name.out" && same_losses whole "$name"; then
    ok "$launcher, scancel${*:+ $*} --signal=USR1: $(echo "$line" | cut -c1-45)…; requeued, SLURM_RESTART_COUNT=1, $(grep -m1 '^resumed' "$name.out" | sed 's|.*/||'); final losses = the uninterrupted run's, bit for bit"
  else
    fail "$launcher preemption: state $state, restarts $restarts"; grep -v "^step" "$name.out" | tail -12
  fi
}
preempt cut srun
preempt cutmpirun mpirun --batch

# 4. a sweep as an array job
cat >sweep.yaml <<'EOF'
base: configs/demo-synthetic.yaml
name: grid
out: sweeps
set: {train.steps: 30, optim.warmup_steps: 2, distill.teacher_pretrain_steps: 10}
grid:
  distill.temperature: [1.0, 2.0]
  distill.alpha: [0.5, 0.9]
slurm: {ntasks: 1, cpus_per_task: 1, max_concurrent: 2}
EOF
"$bin" sweep sweep.yaml >sweep.out 2>&1 || { fail "sweep submission"; cat sweep.out; }
job=$(cat sweeps/grid/job_id 2>/dev/null)
grep -q '^#SBATCH --array=0-3%2$' sweeps/grid/sweep.sbatch || fail "the array job is not 0-3%2"
for _ in $(seq 360); do [ -n "$job" ] && [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] && break; sleep 0.5; done
"$bin" sweep --summary sweeps/grid >summary.out 2>&1
rows=$(grep -cE '^\| p00[0-3] \| [12]\.0 \| 0\.[59] \| 30/30 \| [0-9]' summary.out)
if [ "$rows" = 4 ] && [ -s sweeps/grid/summary.csv ]; then
  ok "sweep: array job $job of 4 points, --summary:"; sed -n '/^| point/,/^$/p' summary.out | sed 's/^/      /'
else
  fail "sweep summary: $rows rows"; cat sweep.out summary.out; tail -3 sweeps/grid/logs/*.out
fi

# 5. a sweep with one invalid point: refused before anything is submitted
sed -e 's/name: grid/name: bad/' -e 's/0.5, 0.9/0.5, 1.5/' sweep.yaml >bad.yaml
before=$(squeue -h | wc -l)
"$bin" sweep bad.yaml >bad.out 2>&1
rc=$?
if [ "$rc" = 2 ] && grep -q "bad.yaml: point p001 (distill.temperature=1.0, distill.alpha=1.5) is invalid: .*distill.alpha = 1.5 is out of range" bad.out \
   && [ ! -e sweeps/bad ] && [ "$(squeue -h | wc -l)" = "$before" ]; then
  ok "invalid point: exit 2, nothing written or submitted: $(cut -c1-150 bad.out)"
else
  fail "invalid sweep: rc $rc"; cat bad.out
fi

[ "$fails" -eq 0 ] && echo "all SLURM checks passed" || { echo "$fails failure(s)"; exit 1; }
