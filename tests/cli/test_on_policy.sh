#!/usr/bin/env bash
# On-policy distillation (distill.on_policy, GKD) on the small corpus of tests/data:
#  * a run with half of every batch sampled by the student logs its rollouts and finishes;
#    the same command twice gives the same metrics, bit for bit, and so does a resume;
#  * 2 data-parallel ranks sample the same rollouts as 1 rank (the same sampled tokens per
#    step; losses within 1e-5: only the reduction order differs);
#  * with QAT and pruning together: the student samples with its fake-quantized, masked
#    weights and the run finishes (masks held);
#  * bad input: exit 2 naming the key: a fraction outside [0, 1], a prompt + sample longer
#    than the context, a teacher cache, the CUDA backend, no teacher.
# Usage: test_on_policy.sh <kdtrain binary> <repo root> <mpirun>
set -u
bin=$1
root=$2
mpirun=$3
source "$(dirname "$0")/lib.sh"
use_mpi
prepare_corpus
train_small_teacher 6
tckpt=$tmp/runs/teacher/checkpoints/step-00000006.h5
cat >"$tmp/onp.yaml" <<YAML
model: {vocab: 300, d_model: 16, n_layers: 1, n_heads: 2, n_kv_heads: 1, d_ff: 32, tie_embeddings: true}
teacher: {checkpoint: $tckpt}
distill: {alpha: 0.5, temperature: 1.0, divergence: jsd, on_policy: {fraction: 0.5, max_new_tokens: 12, prompt_tokens: 8}}
optim: {lr: 3.0e-3, warmup_steps: 2}
train: {steps: 4, batch_size: 4, seq_len: 32, seed: 3, threads: 1, log_every: 1}
data: {kind: shards, train: $tmp/prep/train.bin, val: $tmp/prep/val.bin}
run: {dir: $tmp/runs, name: onp}
YAML
"$bin" distill --config "$tmp/onp.yaml" >"$tmp/onp.log" 2>&1 || { fail "on-policy distill"; cat "$tmp/onp.log"; }
tokens=$(grep '"type":"train"' "$tmp/runs/onp/metrics.jsonl" | sed -E 's/.*"on_policy_tokens":([0-9]+).*/\1/' | tr '\n' ' ')
seqs=$(grep '"type":"train"' "$tmp/runs/onp/metrics.jsonl" | sed -E 's/.*"on_policy_sequences":([0-9]+).*/\1/' | sort -u)
[ "$seqs" = 2 ] && [ -n "$tokens" ] && grep -q "on-policy kd" "$tmp/onp.log" \
  && ok "half of each batch of 4 sampled by the student: sampled tokens per step $tokens" \
  || { fail "on-policy rollouts not logged (sequences '$seqs')"; tail -3 "$tmp/onp.log"; }
"$bin" distill --config "$tmp/onp.yaml" --set run.name=onp2 >/dev/null 2>&1 || fail "second run"
cmp -s <(strip "$tmp/runs/onp/metrics.jsonl" | sed -E 's/"rollout_s":[^,}]*,?//') \
       <(strip "$tmp/runs/onp2/metrics.jsonl" | sed -E 's/"rollout_s":[^,}]*,?//') \
  && ok "the same run twice: the same metrics, bit for bit" || fail "on-policy runs differ"

# resume from step 2: the rollouts are keyed by (seed, step, sequence index), so the resumed
# run is the uninterrupted one, bit for bit
"$bin" distill --config "$tmp/onp.yaml" --set run.name=onp3 --set train.checkpoint_every=2 >/dev/null 2>&1 || fail "onp3"
cp -r "$tmp/runs/onp3" "$tmp/runs/onp3r"
rm "$tmp/runs/onp3r/checkpoints/step-00000004.h5"
"$bin" distill --resume "$tmp/runs/onp3r" >/dev/null 2>&1 || fail "resume of an on-policy run"
cmp -s <(strip "$tmp/runs/onp3/metrics.jsonl" | sed -E 's/"rollout_s":[^,}]*,?//') \
       <(strip "$tmp/runs/onp3r/metrics.jsonl" | sed -E 's/"rollout_s":[^,}]*,?//') \
  && ok "resumed at step 2: the same metrics as the uninterrupted run, bit for bit" || fail "resumed on-policy run differs"

# two data-parallel ranks: the same rollouts (keyed by the global sequence index)
run_np 2 distill --config "$tmp/onp.yaml" --set run.name=onp_dp >"$tmp/dp.log" 2>&1 || { fail "2-rank run"; tail -5 "$tmp/dp.log"; }
dp_tokens=$(grep '"type":"train"' "$tmp/runs/onp_dp/metrics.jsonl" | sed -E 's/.*"on_policy_tokens":([0-9]+).*/\1/' | tr '\n' ' ')
CLOSE_STEPS=4
[ "$dp_tokens" = "$tokens" ] && close "$tmp/runs/onp" "$tmp/runs/onp_dp" 1e-5 \
  && ok "2 ranks: the same sampled tokens per step ($dp_tokens) and losses within 1e-5" \
  || { fail "2 ranks sample otherwise: '$dp_tokens' against '$tokens'"; paste <(losses "$tmp/runs/onp") <(losses "$tmp/runs/onp_dp"); }

# with QAT and pruning: samples from the fake-quantized, masked student
"$bin" distill --config "$tmp/onp.yaml" --set run.name=onpq --set quant.weight=int4:g16 --set quant.activation=int8:token \
  --set quant.fake_quant_start=1 --set prune.sparsity=0.5 >"$tmp/onpq.log" 2>&1 \
  && grep -q "on-policy kd" "$tmp/onpq.log" && ok "on-policy with QAT and pruning" \
  || { fail "on-policy with QAT and pruning"; tail -5 "$tmp/onpq.log"; }

# bad input
expect 2 "distill.on_policy.fraction" validate "$tmp/onp.yaml" --set distill.on_policy.fraction=1.5
expect 2 "distill.on_policy.prompt_tokens (8) + max_new_tokens (30) is longer than the context train.seq_len (32)" \
  validate "$tmp/onp.yaml" --set distill.on_policy.max_new_tokens=30
expect 2 "distill.on_policy: a teacher cache" validate "$tmp/onp.yaml" --set teacher.cache="$tmp/none" \
  --set distill.divergence=forward_kl
expect 2 "distill.on_policy is CPU-only" validate "$tmp/onp.yaml" --set runtime.backend=cuda
expect 2 "distill.on_policy needs a teacher section" train --config "$tmp/teacher.yaml" --set run.name=x \
  --set distill.on_policy.fraction=0.5
[ ! -e "$tmp/runs/x" ] && ok "no run directory after a refused config" || fail "run directory x left behind"

[ $fails -eq 0 ] && echo "all on-policy checks passed" || echo "$fails on-policy check(s) failed"
exit $((fails > 0))
