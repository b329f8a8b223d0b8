#!/usr/bin/env bash
# Offline distillation through a teacher cache (kdtrain cache-teacher, teacher.cache) on
# the small corpus of tests/data:
#  * k = the vocabulary: the cached run's losses equal the online run's within 1e-5
#    (relative; the stored log-sum-exp is float32), and within 2e-3 with bf16 values
#    (bfloat16 keeps 8 bits of mantissa: a logit near 10 moves by up to 0.03);
#  * a cache written by 2 ranks (2 shards) read by 2 ranks and by 1 rank: the same losses
#    as the 1-rank cache within 1e-5;
#  * a top-k cache with k < V trains (finite losses, the run completes);
#  * a teacher held in bfloat16 (teacher.bf16) trains within 1e-3 of the fp32 teacher,
#    locally and on a teacher rank;
#  * every way a cache can be wrong for a run exits 2 naming the cause, and leaves no run
#    directory: another sampler seed, another teacher, a temperature the cache lacks, a
#    divergence or feature loss a cache cannot give, too few sequences, a missing shard, no
#    cache at all; cache-teacher without a teacher checkpoint, or onto an existing cache.
# Usage: test_teacher_cache.sh <kdtrain binary> <repo root> <mpirun>
set -u
bin=$1
root=$2
mpirun=$3
source "$(dirname "$0")/lib.sh"
use_mpi
prepare_corpus
train_small_teacher 6
"$bin" train --config "$tmp/teacher.yaml" --set run.name=teacher2 --set train.seed=4 >/dev/null 2>&1 || fail "teacher 2"
tckpt=$tmp/runs/teacher/checkpoints/step-00000006.h5
cat >"$tmp/student.yaml" <<YAML
model: {vocab: 300, d_model: 16, n_layers: 1, n_heads: 2, n_kv_heads: 1, d_ff: 32, tie_embeddings: true}
teacher: {checkpoint: $tckpt}
distill: {alpha: 0.5, temperature: 2.0, top_k: 300}
optim: {lr: 3.0e-3, warmup_steps: 2}
train: {steps: 6, batch_size: 6, grad_accum: 2, seq_len: 32, seed: 3, threads: 1}
data: {kind: shards, train: $tmp/prep/train.bin, val: $tmp/prep/val.bin}
run: {dir: $tmp/runs}
YAML
CLOSE_STEPS=6  # the student runs' train.steps
distill() { "$bin" distill --config "$tmp/student.yaml" "$@" >"$tmp/last.log" 2>&1 || { fail "distill $*"; tail -3 "$tmp/last.log"; }; }

"$bin" cache-teacher --config "$tmp/student.yaml" --out "$tmp/c32" >"$tmp/c32.log" 2>&1 || { fail "cache-teacher"; cat "$tmp/c32.log"; }
"$bin" cache-teacher --config "$tmp/student.yaml" --out "$tmp/c16" --set distill.cache_bf16=true >/dev/null 2>&1 || fail "bf16 cache"
"$mpirun" -np 2 --oversubscribe "$bin" cache-teacher --config "$tmp/student.yaml" --out "$tmp/c2" >/dev/null 2>&1 || fail "2-rank cache"
"$bin" cache-teacher --config "$tmp/student.yaml" --out "$tmp/ck" --set distill.top_k=16 >/dev/null 2>&1 || fail "top-16 cache"
[ "$(ls "$tmp/c2" | grep -c '^teacher-cache-0000[01]-of-00002.h5$')" = 2 ] && ok "2 ranks write 2 shards" || { fail "2-rank shards"; ls "$tmp/c2"; }

distill --set run.name=online
distill --set run.name=cached --set teacher.cache="$tmp/c32"
grep -q "teacher: the cache" "$tmp/last.log" && ok "the cached run says it reads the cache" || fail "no cache line"
close "$tmp/runs/online" "$tmp/runs/cached" 1e-5 && ok "k = V, f32: the online losses within 1e-5" \
  || { fail "cache vs online"; paste <(losses "$tmp/runs/online") <(losses "$tmp/runs/cached"); }
distill --set run.name=cached16 --set teacher.cache="$tmp/c16"
close "$tmp/runs/online" "$tmp/runs/cached16" 2e-3 && ok "k = V, bf16: the online losses within 2e-3" \
  || { fail "bf16 cache vs online"; paste <(losses "$tmp/runs/online") <(losses "$tmp/runs/cached16"); }
distill --set run.name=shards1 --set teacher.cache="$tmp/c2"
"$mpirun" -np 2 --oversubscribe "$bin" distill --config "$tmp/student.yaml" --set run.name=shards2 \
  --set teacher.cache="$tmp/c2" >"$tmp/shards2.log" 2>&1 || { fail "2-rank distill from a cache"; tail -3 "$tmp/shards2.log"; }
close "$tmp/runs/cached" "$tmp/runs/shards1" 1e-5 && close "$tmp/runs/cached" "$tmp/runs/shards2" 1e-5 \
  && ok "a 2-shard cache read by 1 and by 2 ranks: the 1-shard cache's losses within 1e-5" || fail "sharded caches"
distill --set run.name=topk --set teacher.cache="$tmp/ck"
[ "$(losses "$tmp/runs/topk" | grep -c '^[0-9]')" = 6 ] && ok "top-16 of 300: 6 finite losses" || fail "top-k run"

# a teacher held in bfloat16 (teacher.bf16): the fp32 teacher's losses within 1e-3, and a
# teacher rank holding it in bf16 gives the local bf16 teacher's losses within 1e-5
distill --set run.name=bf16 --set teacher.bf16=true
grep -q "teacher: linear layers in bfloat16" "$tmp/last.log" && close "$tmp/runs/online" "$tmp/runs/bf16" 1e-3 \
  && ok "teacher.bf16: the fp32 teacher's losses within 1e-3: $(grep 'bfloat16' "$tmp/last.log")" \
  || { fail "bf16 teacher"; paste <(losses "$tmp/runs/online") <(losses "$tmp/runs/bf16"); }
"$mpirun" -np 2 --oversubscribe "$bin" distill --config "$tmp/student.yaml" --set run.name=bf16rank \
  --set teacher.bf16=true --set parallel.teacher_ranks=1 >"$tmp/bf16rank.log" 2>&1 || { fail "bf16 teacher rank"; tail -3 "$tmp/bf16rank.log"; }
close "$tmp/runs/bf16" "$tmp/runs/bf16rank" 1e-5 && ok "a bf16 teacher on its own rank: the local bf16 teacher's losses within 1e-5" \
  || fail "bf16 teacher rank vs local"
expect 2 "teacher.bf16 needs teacher.checkpoint, and does not work with teacher.cache" \
  distill --config "$tmp/student.yaml" --set run.name=bad --set teacher.cache="$tmp/c32" --set teacher.bf16=true

# bad caches and configs: exit 2, the cause named, no run directory left
student() { echo distill --config "$tmp/student.yaml" --set run.name=bad --set teacher.cache="$tmp/c32"; }
expect 2 "teacher.cache $tmp/c32 was made for another run: data.seed (the sampler's; default train.seed): '3' in the cache, '5' in this run" \
  $(student) --set train.seed=5
# another initialisation on the same data order (data.seed) reads the same cache
"$bin" distill --config "$tmp/student.yaml" --set run.name=seed5 --set teacher.cache="$tmp/c32" --set train.seed=5 \
  --set data.seed=3 >"$tmp/seed5.log" 2>&1 && ok "train.seed 5 with data.seed 3 reads the seed-3 cache" \
  || { fail "data.seed with a cache"; tail -3 "$tmp/seed5.log"; }
expect 2 "teacher: '" $(student) --set teacher.checkpoint="$tmp/runs/teacher2/checkpoints/step-00000006.h5"
expect 2 "distill.temperature 3 is not among teacher.cache $tmp/c32's temperatures [1, 2]" $(student) --set distill.temperature=3
expect 2 "distill.divergence is reverse_kl; a teacher cache" $(student) --set distill.divergence=reverse_kl
expect 2 "distill.feature.beta > 0 needs the teacher's hidden states" $(student) --set distill.feature.beta=0.5 \
  --set "distill.feature.layers=[[1, 2]]"
expect 2 "holds 72 sequences; this run reads 84" $(student) --set train.steps=7
cp -r "$tmp/c2" "$tmp/c2half" && rm "$tmp/c2half/teacher-cache-00001-of-00002.h5"
expect 2 "holds 1 of the 2 shards" distill --config "$tmp/student.yaml" --set run.name=bad --set teacher.cache="$tmp/c2half"
expect 2 "is not a directory" distill --config "$tmp/student.yaml" --set run.name=bad --set teacher.cache="$tmp/none"
[ ! -e "$tmp/runs/bad" ] && ok "no run directory after the refusals" || fail "a refused run left $tmp/runs/bad"
expect 2 "the config has no teacher section" cache-teacher --config "$tmp/teacher.yaml" --out "$tmp/x"
sed "s|^teacher: .*|teacher: {vocab: 300, d_model: 32, n_layers: 2, n_heads: 4, n_kv_heads: 2, d_ff: 64}|" "$tmp/student.yaml" \
  >"$tmp/no_ckpt.yaml"
expect 2 "cache-teacher: the config needs teacher.checkpoint" cache-teacher --config "$tmp/no_ckpt.yaml" --out "$tmp/x"
expect 2 "already holds a cache" cache-teacher --config "$tmp/student.yaml" --out "$tmp/c32"

[ "$fails" -eq 0 ] && echo "all teacher-cache checks passed" || { echo "$fails failure(s)"; exit 1; }
