#!/usr/bin/env bash
# The body of scripts/slurm/{train,distill,ptq}.sbatch: runs kdtrain inside a SLURM
# allocation and requeues the job when kdtrain says it was preempted.
#   run.sh train|distill CONFIG [kdtrain options...]   ranks: SLURM_NTASKS, threads per rank:
#                                                      SLURM_CPUS_PER_TASK; --auto-resume: a
#                                                      restarted job continues from the newest
#                                                      checkpoint
#   run.sh ptq CHECKPOINT --out Q.h5 [options...]      one process
# Environment: KDTRAIN (the binary; default $KDTRAIN_ROOT/build/kdtrain), KDTRAIN_ROOT
# (default the submit directory), KDTRAIN_LAUNCHER=srun|mpirun (default srun).
# Signals: the .sbatch files ask for `--signal=B:USR1@N`, which SLURM sends to this shell
# N seconds before the time limit; it is forwarded to the launcher, which passes it to every
# rank (srun and mpirun both do). `scancel --signal=USR1 JOB` reaches srun's ranks directly.
# kdtrain then finishes its step, checkpoints and exits 99; this script requeues the job
# (same job id, SLURM_RESTART_COUNT + 1), which restarts after SLURM's cred_expire.
set -u
what=${1:?usage: run.sh train|distill|ptq CONFIG_OR_CHECKPOINT [options...]}
input=${2:?usage: run.sh train|distill|ptq CONFIG_OR_CHECKPOINT [options...]}
shift 2
root=${KDTRAIN_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}
bin=${KDTRAIN:-$root/build/kdtrain}
launcher=${KDTRAIN_LAUNCHER:-srun}
ranks=${SLURM_NTASKS:-1}
threads=${SLURM_CPUS_PER_TASK:-1}
export OMP_NUM_THREADS=$threads

[ -x "$bin" ] || { echo "kdtrain: $bin not found or not executable (set KDTRAIN or KDTRAIN_ROOT)" >&2; exit 2; }
case $what in
  train|distill) args=("$what" --config "$input" --auto-resume --set "train.threads=$threads" "$@") ;;
  ptq) args=(ptq "$input" "$@"); ranks=1 ;;
  *) echo "run.sh: unknown command '$what' (train, distill or ptq)" >&2; exit 2 ;;
esac
case $launcher in
  srun) cmd=(srun --mpi=pmix -n "$ranks" --cpus-per-task="$threads" "$bin" "${args[@]}") ;;
  mpirun) export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
          cmd=(mpirun -np "$ranks" --oversubscribe --bind-to none "$bin" "${args[@]}") ;;
  *) echo "run.sh: KDTRAIN_LAUNCHER is '$launcher' (srun or mpirun)" >&2; exit 2 ;;
esac
echo "kdtrain job ${SLURM_JOB_ID:-?}${SLURM_ARRAY_TASK_ID:+ task $SLURM_ARRAY_TASK_ID} SLURM_RESTART_COUNT=${SLURM_RESTART_COUNT:-0}: $what $input on $ranks rank(s) x $threads thread(s) via $launcher"

# The launcher runs in the background so that this shell can take a signal at once (bash
# runs a trap only between foreground commands) and pass it on.
"${cmd[@]}" &
pid=$!
trap 'kill -USR1 "$pid" 2>/dev/null' USR1
trap 'kill -TERM "$pid" 2>/dev/null' TERM
while kill -0 "$pid" 2>/dev/null; do wait "$pid"; done
wait "$pid"
rc=$?
if [ "$rc" = 99 ] && [ -n "${SLURM_JOB_ID:-}" ]; then
  echo "kdtrain: preempted: requeueing job $SLURM_JOB_ID (restart $(( ${SLURM_RESTART_COUNT:-0} + 1 )))"
  if scontrol requeue "$SLURM_JOB_ID"; then
    trap - TERM USR1
    sleep 300  # SLURM ends this run of the job now; the requeued one starts after cred_expire
    exit "$rc"
  fi
  echo "kdtrain: the requeue failed (is the job --requeue-able?); exit 99" >&2
fi
exit "$rc"
