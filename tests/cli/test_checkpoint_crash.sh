#!/usr/bin/env bash
# Checkpoints that survive crashes (docs/checkpoint-format.md, "Writing"):
# - kill -9 (SIGKILL, raised by the writer itself at a chosen point through
#   KDTRAIN_CHECKPOINT_FAULT) during the second checkpoint write, at each of: mid-dataset,
#   after close, after fsync, after rename, before the directory fsync. Every file under a
#   final name verifies whole (kdtrain inspect --verify), the killed checkpoint exists only
#   when the rename happened, and --resume continues to the uninterrupted run's losses bit for
#   bit. The same mid-dataset kill on 2 ranks (a collective write: one file, each rank writing its part).
# - A write that fails in the background (KDTRAIN_CHECKPOINT_FAULT=write-error: the writer
#   thread's disk write fails half way, as with EIO): exit 3 at the step after it, naming the
#   checkpoint, the dataset and the error; no .tmp; the previous checkpoint whole; resumed bit
#   for bit.
# - Random kills (SIGKILL at seeded random moments) of runs that checkpoint every step, so a
#   background write is nearly always in flight: after each, every final-named file verifies;
#   resumed after each, the run ends with the uninterrupted run's losses bit for bit.
# - A flipped byte in the newest checkpoint's tensor data: --resume says so, falls back to
#   the one before and still ends bit for bit.
# - A full disk (a file-size limit, ulimit -f): exit 3 naming the checkpoint, no .tmp left,
#   the previous checkpoints unchanged.
# - Periodic checkpoints by wall time (train.checkpoint_minutes) on 2 ranks.
# - train.checkpoint_copy first and none: the default run's losses and checkpoint tensors.
# Usage: test_checkpoint_crash.sh <kdtrain binary> <repo root> <mpirun>
set -u
bin=$1
root=$2
mpirun=$3
source "$(dirname "$0")/lib.sh"
use_mpi
py=/usr/bin/python3
args=(distill --config "$root/configs/demo-synthetic.yaml" --set distill.teacher_pretrain_steps=20
      --set train.steps=8 --set optim.warmup_steps=2 --set train.checkpoint_every=2 --set train.keep_checkpoints=3
      --set train.threads=1 --set run.dir="$tmp/runs")
ck() { printf '%s/runs/%s/checkpoints/step-%08d.h5' "$tmp" "$1" "$2"; }
same_losses() { cmp -s <(strip "$tmp/runs/$1/metrics.jsonl") <(strip "$tmp/runs/$2/metrics.jsonl"); }

"$bin" "${args[@]}" --set run.name=whole >"$tmp/whole.log" 2>&1 || { fail "uninterrupted run"; cat "$tmp/whole.log"; }

# every file under a final name is whole
all_verify() {
  local f bad=0
  for f in "$tmp/runs/$1"/checkpoints/step-*.h5; do
    [ -e "$f" ] || continue  # no final-named file yet (a kill before the first checkpoint): nothing to check
    "$bin" inspect --verify "$f" >/dev/null 2>"$tmp/verify.err" || { bad=1; cat "$tmp/verify.err"; }
  done
  return $bad
}

for point in mid-dataset after-close after-fsync after-rename before-dir-fsync; do
  KDTRAIN_CHECKPOINT_FAULT=$point:2 "$bin" "${args[@]}" --set run.name="$point" >"$tmp/$point.log" 2>&1
  rc=$?
  [ "$rc" = 137 ] || { fail "$point: rc $rc, expected 137 (SIGKILL)"; tail -3 "$tmp/$point.log"; continue; }
  case $point in after-rename|before-dir-fsync) want=4 ;; *) want=2 ;; esac
  if [ -f "$(ck "$point" 4)" ] && [ "$want" = 2 ]; then
    fail "$point: step 4 exists under its final name before its rename"
  elif [ ! -f "$(ck "$point" "$want")" ]; then
    fail "$point: checkpoint of step $want missing"
  elif ! all_verify "$point"; then
    fail "$point: a file under a final name does not verify"
  else
    ok "$point: killed (137); newest whole checkpoint step $want, every final-named file verifies$( [ -e "$(ck "$point" 4).tmp" ] && echo ', the .tmp left behind')"
  fi
  [ "$point" = after-rename ] && cp -a "$tmp/runs/$point" "$tmp/runs/flip"  # for the flipped-byte case
  [ "$point" = after-rename ] && cp -a "$tmp/runs/$point" "$tmp/runs/full"  # for the full-disk case
  "$bin" distill --resume "$tmp/runs/$point" >"$tmp/$point.res" 2>&1 || { fail "$point: resume"; tail -3 "$tmp/$point.res"; continue; }
  grep -q "resumed from $(ck "$point" "$want") at step $want" "$tmp/$point.res" \
    && same_losses whole "$point" && ! ls "$tmp/runs/$point"/checkpoints/*.tmp >/dev/null 2>&1 \
    && ok "$point: resumed at step $want, the uninterrupted losses bit for bit, no .tmp left" \
    || { fail "$point: resume differs"; grep -v "^step" "$tmp/$point.res" | head -5; }
done

# 2 ranks: both die mid-dataset of a collective write; resumed on 2 ranks, bit for bit
run_np 2 "${args[@]}" --set run.name=whole2 >"$tmp/whole2.log" 2>&1 || { fail "2-rank run"; tail -5 "$tmp/whole2.log"; }
KDTRAIN_CHECKPOINT_FAULT=mid-dataset:2 "$mpirun" -np 2 --oversubscribe -x KDTRAIN_CHECKPOINT_FAULT \
  "$bin" "${args[@]}" --set run.name=cut2 >"$tmp/cut2.log" 2>&1
rc=$?
if [ "$rc" != 0 ] && [ ! -f "$(ck cut2 4)" ] && all_verify cut2; then
  ok "2 ranks killed mid-dataset (rc $rc): step 4 absent, step 2 verifies"
else
  fail "2 ranks mid-dataset: rc $rc"; ls "$tmp/runs/cut2/checkpoints"
fi
run_np 2 distill --resume "$tmp/runs/cut2" >"$tmp/cut2.res" 2>&1 || fail "2-rank resume"
grep -q "resumed from $(ck cut2 2) at step 2" "$tmp/cut2.res" && same_losses whole2 cut2 \
  && ok "2 ranks resumed at step 2: the uninterrupted 2-rank losses bit for bit" || fail "2-rank resume differs"

# A background write that fails (the writer thread's pwrite returns EIO half way through the
# second checkpoint): reported at the next step, exit 3, nothing half-written left
KDTRAIN_CHECKPOINT_FAULT=write-error:2 "$bin" "${args[@]}" --set run.name=eio >"$tmp/eio.log" 2>&1
rc=$?
if [ "$rc" = 3 ] && grep -q "$(ck eio 4): cannot write checkpoint: .*tensors/.*Input/output error" "$tmp/eio.log" \
   && [ ! -e "$(ck eio 4)" ] && [ ! -e "$(ck eio 4).tmp" ] && all_verify eio; then
  ok "write error in the background: exit 3, $(grep -o 'cannot write checkpoint.*' "$tmp/eio.log" | sed "s|$tmp/||g" | cut -c1-150); no .tmp, step 2 whole"
else
  fail "background write error: rc $rc"; grep -v "^step" "$tmp/eio.log" | tail -3; ls "$tmp/runs/eio/checkpoints"
fi
"$bin" distill --resume "$tmp/runs/eio" >"$tmp/eio.res" 2>&1 && grep -q "resumed from $(ck eio 2) at step 2" "$tmp/eio.res" \
  && same_losses whole eio && ok "after the write error: resumed at step 2, bit for bit" || fail "resume after the write error"

# The other ways of keeping the state while it is written (train.checkpoint_copy: first, the
# writer copying it all before it writes; none, the update waiting for the disk): the default
# (at_update) run's losses, every checkpoint verifies, and each kept checkpoint's tensors
# (weights, moments) are the default run's bit for bit (h5diff of /tensors; hdf5-tools).
for mode in first none; do
  "$bin" "${args[@]}" --set run.name="copy_$mode" --set train.checkpoint_copy="$mode" >"$tmp/copy_$mode.log" 2>&1 \
    || { fail "checkpoint_copy: $mode: the run failed"; tail -3 "$tmp/copy_$mode.log"; continue; }
  differ=""
  for s in 4 6 8; do
    h5diff -q "$(ck whole "$s")" "$(ck "copy_$mode" "$s")" /tensors /tensors >/dev/null 2>&1 || differ="$differ $s"
  done
  same_losses whole "copy_$mode" && all_verify "copy_$mode" && [ -z "$differ" ] \
    && ok "checkpoint_copy: $mode: the default run's losses; its checkpoints verify and hold the default's tensors bit for bit" \
    || fail "checkpoint_copy: $mode: differs from the default run (checkpoints of steps:${differ:- none})"
done

# Random kills while checkpoints are written in the background: a 10.5M-parameter student
# (126 MB checkpoints, each written while the next steps train) checkpointed every step,
# killed at seeded random moments and resumed, until it finishes
cat >"$tmp/rk.yaml" <<'YAML'
model: {vocab: 64, d_model: 512, n_layers: 4, n_heads: 8, n_kv_heads: 8, d_ff: 1024, tie_embeddings: true}
optim: {lr: 1.0e-3, warmup_steps: 2, schedule: cosine}
train: {steps: 80, batch_size: 2, seq_len: 16, seed: 7, threads: 1, log_every: 10, checkpoint_every: 1, keep_checkpoints: 3}
data: {kind: markov, markov_support: 4}
YAML
rk=(train --config "$tmp/rk.yaml" --set run.dir="$tmp/runs")
"$bin" "${rk[@]}" --set run.name=rk_whole >"$tmp/rk_whole.log" 2>&1 || { fail "random kills: uninterrupted run"; tail -3 "$tmp/rk_whole.log"; }
RANDOM=2612  # fixed: the same kill moments every run
kills=0 bad=0 inflight=0
for trial in 1 2 3 4 5 6; do
  [ -e "$tmp/runs/rk/checkpoints/step-00000080.h5" ] && break  # finished: a resume would only evaluate again
  if ls "$tmp/runs/rk/checkpoints"/step-*.h5 >/dev/null 2>&1; then
    "$bin" train --resume "$tmp/runs/rk" >"$tmp/rk.$trial.log" 2>&1 &
  else
    rm -rf "$tmp/runs/rk"
    "$bin" "${rk[@]}" --set run.name=rk >"$tmp/rk.$trial.log" 2>&1 &
  fi
  pid=$!
  sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 0.5 + 1.0 * r / 32767 }')"
  ls "$tmp/runs/rk/checkpoints"/*.tmp >/dev/null 2>&1 && inflight=$((inflight + 1))
  kill -9 "$pid" 2>/dev/null && kills=$((kills + 1))
  wait "$pid" 2>/dev/null
  all_verify rk || bad=$((bad + 1))
done
if ls "$tmp/runs/rk/checkpoints"/step-*.h5 >/dev/null 2>&1; then
  "$bin" train --resume "$tmp/runs/rk" >"$tmp/rk.end.log" 2>&1 || fail "random kills: the last resume"
else  # every kill came before the first checkpoint (a busy machine): the run from the start
  rm -rf "$tmp/runs/rk"
  "$bin" "${rk[@]}" --set run.name=rk >"$tmp/rk.end.log" 2>&1 || fail "random kills: the last run"
fi
if [ "$bad" = 0 ] && same_losses rk_whole rk && ! ls "$tmp/runs/rk/checkpoints"/*.tmp >/dev/null 2>&1; then
  ok "random kills: $kills SIGKILLs ($inflight with a write in flight), every final-named file verified after each; resumed, the uninterrupted losses bit for bit"
else
  fail "random kills: $bad kill(s) left a final-named file that does not verify, or the losses differ"
  ls "$tmp/runs/rk/checkpoints"; diff <(strip "$tmp/runs/rk_whole/metrics.jsonl") <(strip "$tmp/runs/rk/metrics.jsonl") | head -4
  tail -2 "$tmp/rk.end.log"
fi

# A flipped byte in the newest checkpoint's data: found by its checksums, the one before is used
if [ -x "$py" ] && "$py" -c 'import h5py' 2>/dev/null; then
  off=$("$py" - "$(ck flip 4)" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    ds = f["tensors/adam_m"][list(f["tensors/adam_m"].keys())[0]]
    print(ds.id.get_offset() + 4)  # contiguous: the dataset's bytes start there
PY
)
  printf '\xff' | dd of="$(ck flip 4)" bs=1 seek="$off" conv=notrunc status=none
  if "$bin" inspect --verify "$(ck flip 4)" >/dev/null 2>"$tmp/flip.err"; then
    fail "a flipped byte at $off passes --verify"
  else
    ok "inspect --verify: $(head -1 "$tmp/flip.err" | cut -c1-150)"
  fi
  "$bin" distill --resume "$tmp/runs/flip" >"$tmp/flip.res" 2>&1 || fail "resume past a damaged checkpoint"
  grep -q "warning: checkpoint $(ck flip 4) is damaged or incomplete: .*adam_m.*; falling back to $(ck flip 2)" "$tmp/flip.res" \
    && grep -q "resumed from $(ck flip 2) at step 2" "$tmp/flip.res" && same_losses whole flip \
    && ok "flipped byte: $(grep -o 'warning: checkpoint.*' "$tmp/flip.res" | sed "s|$tmp/||g" | cut -c1-170)…; resumed at step 2, bit for bit" \
    || { fail "flipped byte not handled"; grep -v "^step" "$tmp/flip.res" | head -5; }
else
  fail "/usr/bin/python3 with h5py is needed to find a chunk (scripts/test.sh installs python3-h5py)"
fi

# last_chunk FILE PREFIX: the file offset of the last 4 bytes of the last dataset (in the
# order written: the manifest's) whose path starts with PREFIX: within its last CRC block
last_chunk() {
  "$py" - "$1" "$2" <<'PY'
import json, sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    paths = [e["path"] for e in json.loads(f["manifest"][()].decode())["datasets"]]
    ds = f[[p for p in paths if p.startswith(sys.argv[2])][-1]]
    print(ds.id.get_offset() + max(0, ds.id.get_storage_size() - 4))
PY
}

# 2 ranks, the damage in rank 1's ZeRO shard of the moments only (the last chunk of the
# flat buffer's last tensor): rank 1 finds it as it reads, both ranks fall back together
cp -a "$tmp/runs/whole2" "$tmp/runs/flip2" && rm "$(ck flip2 8)"
off=$(last_chunk "$(ck flip2 6)" tensors/adam_m/)
printf '\xff' | dd of="$(ck flip2 6)" bs=1 seek="$off" conv=notrunc status=none
run_np 2 distill --resume "$tmp/runs/flip2" >"$tmp/flip2.res" 2>&1 || fail "2-rank resume past a damaged shard"
grep -q "warning: checkpoint $(ck flip2 6) is damaged or incomplete: damage found by another rank.*; falling back to $(ck flip2 4)" "$tmp/flip2.res" \
  && grep -q "warning: $(ck flip2 6): tensor \"adam_m/.*the file is damaged" "$tmp/flip2.res" \
  && grep -q "resumed from $(ck flip2 4) at step 4" "$tmp/flip2.res" && same_losses whole2 flip2 \
  && ok "2 ranks, damage in rank 1's shard only: both fell back to step 4, the 2-rank losses bit for bit" \
  || { fail "2-rank damaged shard not handled"; grep -v "^step" "$tmp/flip2.res" | head -8; }

# A damaged checkpoint whose predecessor holds other kinds of state (a dense run resumed at
# step 4 with a prune section: step 6 has masks, step 4 none): the masks read in part cannot
# be reset by the fallback's read, so the resume stops, saying to move the damaged file aside
cp -a "$tmp/runs/whole" "$tmp/runs/kinds" && rm "$(ck kinds 6)" "$(ck kinds 8)"
"$bin" distill --resume "$tmp/runs/kinds" --set prune.criterion=magnitude_global --set prune.sparsity=0.5 \
  --set prune.schedule=oneshot --set prune.at=5 >"$tmp/kinds.log" 2>&1 || { fail "pruned resume"; tail -3 "$tmp/kinds.log"; }
rm "$(ck kinds 8)"
printf 'junk' | dd of="$(ck kinds 6)" bs=1 seek="$(last_chunk "$(ck kinds 6)" tensors/masks/)" conv=notrunc status=none
expect 2 "step-00000004.h5 is without pruning masks, without quantizer state, unlike the damaged checkpoint after it (with pruning masks" \
  distill --resume "$tmp/runs/kinds"
grep -q "move the damaged checkpoint out of $tmp/runs/kinds/checkpoints" "$tmp/err" || fail "kinds: no advice to move the file"

# A full disk: the write of step 6 hits a file-size limit below a checkpoint's size
before=$(cd "$tmp/runs/full/checkpoints" && sha256sum step-*.h5)
limit=$(( $(stat -c %s "$(ck full 4)") / 1024 / 2 ))
( ulimit -f "$limit"; exec "$bin" distill --resume "$tmp/runs/full" ) >"$tmp/full.log" 2>&1
rc=$?
after=$(cd "$tmp/runs/full/checkpoints" && sha256sum step-*.h5)
if [ "$rc" = 3 ] && grep -q "$(ck full 6): cannot write checkpoint" "$tmp/full.log" && [ "$before" = "$after" ] \
   && [ ! -e "$(ck full 6)" ] && [ ! -e "$(ck full 6).tmp" ]; then
  ok "file-size limit ${limit} KiB: exit 3, $(grep -o 'cannot write checkpoint.*' "$tmp/full.log" | cut -c1-120); steps 2 and 4 unchanged, no .tmp"
else
  fail "full disk: rc $rc"; grep -v "^step" "$tmp/full.log" | tail -4; echo "$before"; echo "$after"
fi

# Bad input around checkpoints: exit 2, naming the thing
expect 2 "step-00000004.h5: the data sampler does not reproduce the checkpoint's state" \
  distill --resume "$tmp/runs/full" --set train.seed=99
KDTRAIN_CHECKPOINT_FAULT=mid-data:1 expect 2 "KDTRAIN_CHECKPOINT_FAULT=mid-data:1: expected <point>:<n>" \
  "${args[@]}" --set run.name=badfault
[ ! -e "$tmp/runs/badfault" ] || fail "a malformed KDTRAIN_CHECKPOINT_FAULT left a run directory"
cp -a "$tmp/runs/mid-dataset" "$tmp/runs/alldamaged"
for f in "$tmp/runs/alldamaged"/checkpoints/step-*.h5; do printf 'junk' | dd of="$f" bs=1 seek=2000 conv=notrunc status=none; done
expect 2 "--resume $tmp/runs/alldamaged: no checkpoint can be read" distill --resume "$tmp/runs/alldamaged"
# a checkpoint without a manifest (as an older kdtrain wrote them): --verify refuses to vouch
# for it; a resume uses it, saying it is unverified
mkdir -p "$tmp/runs/old/checkpoints"
cp "$tmp/runs/whole/config.yaml" "$tmp/runs/old/"
cp "$(ck whole 6)" "$(ck old 6)"
"$py" -c 'import sys, h5py; f = h5py.File(sys.argv[1], "r+"); del f["manifest"]; f.close()' "$(ck old 6)" || fail "h5py"
expect 2 "step-00000006.h5: the checkpoint has no manifest to verify against" inspect --verify "$(ck old 6)"
"$bin" distill --resume "$tmp/runs/old" >"$tmp/old.log" 2>&1 && grep -q "warning: .*step-00000006.h5 has no manifest (written by an older kdtrain" "$tmp/old.log" \
  && ok "a checkpoint without a manifest: resumed with a warning that it is unverified" || { fail "manifest-less resume"; tail -3 "$tmp/old.log"; }

# Periodic by wall time: checkpoint_minutes tiny (6 ms) saves after about every step, on 2
# ranks that agree when (the save is collective); checkpoint_every 0 would save only at the end
run_np 2 "${args[@]}" --set run.name=timed --set train.checkpoint_every=0 --set train.checkpoint_minutes=0.0001 \
  --set train.keep_checkpoints=100 >"$tmp/timed.log" 2>&1 || { fail "timed checkpoints"; tail -3 "$tmp/timed.log"; }
n=$(ls "$tmp/runs/timed/checkpoints" | grep -c '^step-.*\.h5$')
[ "$n" -ge 4 ] && all_verify timed && ok "checkpoint_minutes: $n checkpoints in 8 steps with checkpoint_every 0, all verify" \
  || fail "checkpoint_minutes: $n checkpoints"

[ "$fails" -eq 0 ] && echo "all checkpoint crash checks passed" || { echo "$fails failure(s)"; exit 1; }
