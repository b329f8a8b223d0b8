# Shared by the CLI test scripts (sourced): a temp dir, a failure count, and
# `expect <exit code> <stderr substring> <kdtrain args...>`. Needs $bin.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok:   $*"; }

expect() {
  local code=$1 want=$2
  shift 2
  "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ "$rc" -ne "$code" ] || ! grep -qF -- "$want" "$tmp/err"; then
    fail "kdtrain $* -> rc=$rc (want $code); wanted to see: $want; stderr:"
    sed 's/^/    /' "$tmp/err"
  else
    ok "kdtrain $(printf '%s ' "$@" | cut -c1-60)-> $rc: $(head -1 "$tmp/err" | cut -c1-160)"
  fi
}

# Metrics lines without their timing fields (they differ run to run): for exact comparisons.
strip() { sed -E 's/"(time_s|tokens_per_s|comm_s)":[^,}]*,?//g' "$1"; }
# The small corpus of tests/data as a 300-token BPE tokenizer and shards in $tmp/prep. Needs $root.
prepare_corpus() {
  "$bin" prepare "$root/tests/data" --out "$tmp/prep" --vocab-size 300 --val-every 3 >/dev/null || fail "prepare"
}

# MPI tests: one thread per rank, and the two variables OpenMPI wants as root. Needs $mpirun.
use_mpi() { export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; }
run_np() { local np=$1; shift; "$mpirun" -np "$np" --oversubscribe "$bin" "$@"; }

# A small teacher trained for $1 steps on the corpus of prepare_corpus:
# $tmp/runs/teacher/checkpoints/step-<$1>.h5.
train_small_teacher() {
  cat >"$tmp/teacher.yaml" <<YAML
model: {vocab: 300, d_model: 32, n_layers: 2, n_heads: 4, n_kv_heads: 2, d_ff: 64, tie_embeddings: true}
optim: {lr: 3.0e-3, warmup_steps: 2}
train: {steps: $1, batch_size: 6, seq_len: 32, seed: 3, threads: 1}
data: {kind: shards, train: $tmp/prep/train.bin, val: $tmp/prep/val.bin}
run: {dir: $tmp/runs, name: teacher}
YAML
  "$bin" train --config "$tmp/teacher.yaml" >"$tmp/teacher.log" 2>&1 || { fail "teacher training"; cat "$tmp/teacher.log"; }
}

# The train-line losses of a run directory, one per line.
losses() { grep '"type":"train"' "$1/metrics.jsonl" | sed -E 's/.*"loss":([^,}]*).*/\1/'; }
# close <run a> <run b> <relative tolerance>: both runs logged $CLOSE_STEPS steps (set by
# the script), each loss of b within the tolerance of a's.
close() {
  [ "$(losses "$1" | wc -l)" = "$CLOSE_STEPS" ] && [ "$(losses "$2" | wc -l)" = "$CLOSE_STEPS" ] || return 1
  paste <(losses "$1") <(losses "$2") | awk -v tol="$3" '
    { d = $1 - $2; if (d < 0) d = -d; a = $2 < 0 ? -$2 : $2; if (d > tol * a) bad++ }
    END { exit bad == 0 ? 0 : 1 }'
}

# train_tiny NAME PREPDIR "MODEL KEYS" [STEPS] [SEQ]: a tiny model trained on PREPDIR/train.bin
# (its tokenizer comes along) with a checkpoint at the last step:
# $tmp/runs/NAME/checkpoints/step-<STEPS>.h5. MODEL KEYS: the model section's keys, vocab included.
train_tiny() {
  local steps=${4:-2}
  cat >"$tmp/$1.yaml" <<YAML
model: {$3}
optim: {lr: 1.0e-3, warmup_steps: 1}
train: {steps: $steps, batch_size: 2, seq_len: ${5:-16}, seed: 1, threads: 2, checkpoint_every: $steps}
data: {kind: shards, train: $2/train.bin}
run: {dir: $tmp/runs, name: $1}
YAML
  "$bin" train --config "$tmp/$1.yaml" >"$tmp/$1.log" 2>&1 || { fail "training $1"; cat "$tmp/$1.log"; }
}

# need_npm PREFIX PACKAGE...: exit 77 (skip), saying why, without node or one of the npm
# packages under PREFIX (scripts/test.sh installs them when npm's registry is reachable).
need_npm() {
  local prefix=$1
  shift
  command -v node >/dev/null || { echo "SKIP: node is not installed"; exit 77; }
  for pkg in "$@"; do
    [ -d "$prefix/node_modules/$pkg" ] \
      || { echo "SKIP: $pkg is not in $prefix (npm's registry out of reach when test.sh ran?)"; exit 77; }
  done
}
