#!/usr/bin/env bash
# The product path on the small corpus in tests/data: prepare -> train a teacher ->
# eval reproduces the logged validation loss -> exact resume -> distill (agreement with
# the teacher) -> generate; and every bad input on that path: exit 2, a message naming
# the thing, and no run directory left behind.
# Usage: test_product_path.sh <kdtrain binary> <repo root>
set -u
bin=$1
root=$2
source "$(dirname "$0")/lib.sh"
export OMP_NUM_THREADS=2

prepare_corpus
cat >"$tmp/teacher.yaml" <<YAML
model: {vocab: 300, d_model: 32, n_layers: 2, n_heads: 4, n_kv_heads: 2, d_ff: 64, tie_embeddings: true}
optim: {lr: 3.0e-3, warmup_steps: 2}
train: {steps: 8, batch_size: 4, seq_len: 32, seed: 3, threads: 2, log_every: 4, eval_every: 4, checkpoint_every: 4, keep_checkpoints: 5}
data: {kind: shards, train: $tmp/prep/train.bin, val: $tmp/prep/val.bin}
run: {dir: $tmp/runs, name: teacher}
YAML
"$bin" train --config "$tmp/teacher.yaml" >"$tmp/teacher.log" 2>&1 || { fail "teacher training"; cat "$tmp/teacher.log"; }
tckpt=$tmp/runs/teacher/checkpoints/step-00000008.h5
[ -f "$tckpt" ] && [ -f "$tmp/runs/teacher/config.yaml" ] && [ -f "$tmp/runs/teacher/metrics.jsonl" ] \
  && ok "run directory holds config.yaml, metrics.jsonl and checkpoints" || fail "run directory incomplete"

# eval on the checkpoint reproduces the loss the run logged at that step, exactly
logged=$(grep '"type":"eval"' "$tmp/runs/teacher/metrics.jsonl" | tail -1 | sed -E 's/.*"val_loss":([^,}]*).*/\1/')
evald=$("$bin" eval "$tckpt" --json | sed -E 's/.*"val_loss":([^,}]*).*/\1/')
[ -n "$logged" ] && [ "$logged" = "$evald" ] && ok "eval reproduces the logged val loss $logged" \
  || fail "eval gives $evald, the run logged $logged"

# exact resume: drop the final checkpoint, continue from step 4, compare every line
cp -r "$tmp/runs/teacher" "$tmp/runs/resumed"
rm "$tmp/runs/resumed/checkpoints/step-00000008.h5"
"$bin" train --resume "$tmp/runs/resumed" >/dev/null 2>&1 || fail "resume"
if cmp -s <(strip "$tmp/runs/teacher/metrics.jsonl") <(strip "$tmp/runs/resumed/metrics.jsonl"); then
  ok "resume from step 4 gives the same losses, bit for bit, as the uninterrupted run"
else
  fail "resumed run differs"; diff <(strip "$tmp/runs/teacher/metrics.jsonl") <(strip "$tmp/runs/resumed/metrics.jsonl") | head -4
fi

# provenance on resume: other training data is an error naming the field; another thread
# count only a warning (the run continues, just not bit for bit)
cp -r "$tmp/runs/teacher" "$tmp/runs/prov"
rm "$tmp/runs/prov/checkpoints/step-00000008.h5"
expect 2 "provenance field 'train_data_hash'" train --resume "$tmp/runs/prov" --set data.train="$tmp/prep/val.bin"
"$bin" train --resume "$tmp/runs/prov" --set train.threads=1 >"$tmp/prov.log" 2>&1 \
  && grep -q "warning: .*threads was '2' and is '1' now" "$tmp/prov.log" \
  && ok "resuming on another thread count warns and continues" || { fail "thread-count warning on resume"; head -3 "$tmp/prov.log"; }

# distill a smaller student from the teacher checkpoint
cat >"$tmp/student.yaml" <<YAML
model: {vocab: 300, d_model: 16, n_layers: 1, n_heads: 2, n_kv_heads: 1, d_ff: 32, tie_embeddings: true}
teacher: {checkpoint: $tckpt}
distill: {alpha: 0.5, temperature: 1.0, feature: {beta: 0.1, kind: mse, layers: [[1, 2]]}}
optim: {lr: 3.0e-3, warmup_steps: 2}
train: {steps: 4, batch_size: 4, seq_len: 32, seed: 3, threads: 2}
data: {kind: shards, train: $tmp/prep/train.bin, val: $tmp/prep/val.bin}
run: {dir: $tmp/runs, name: student}
YAML
"$bin" distill --config "$tmp/student.yaml" >"$tmp/student.log" 2>&1 || { fail "distill"; cat "$tmp/student.log"; }
grep -q '"agreement"' "$tmp/runs/student/metrics.jsonl" && ok "distill logs agreement with the teacher" \
  || fail "no agreement in the student's metrics"
"$bin" generate "$tmp/runs/student/checkpoints/step-00000004.h5" --prompt "The" --max-new-tokens 5 >/dev/null \
  && ok "generate" || fail "generate"
# sequence-level KD: the teacher's continuations as a shard (the same at any --batch) that
# distill trains on
gd=(generate-data "$tckpt" --sequences 12 --prompt-tokens 8 --max-new-tokens 16 --seed 4)
"$bin" "${gd[@]}" --out "$tmp/gd" --batch 5 >"$tmp/gd.log" 2>&1 && "$bin" "${gd[@]}" --out "$tmp/gd1" --batch 1 >/dev/null 2>&1 \
  && cmp -s "$tmp/gd/train.bin" "$tmp/gd1/train.bin" && grep -q "12 documents" "$tmp/gd.log" \
  && ok "generate-data: $(tail -1 "$tmp/gd.log")" || { fail "generate-data"; cat "$tmp/gd.log"; }
"$bin" distill --config "$tmp/student.yaml" --set run.name=seqkd --set data.train="$tmp/gd/train.bin" >"$tmp/seqkd.log" 2>&1 \
  && ok "distill on the teacher's generated data" || { fail "distill on generate-data's shard"; tail -3 "$tmp/seqkd.log"; }
# the KV cache and the whole-context recompute sample the same text, three prompts at once;
# the sequences stop at the context (32 positions), and say so
sck=$tmp/runs/student/checkpoints/step-00000004.h5
gen=(generate "$sck" --prompt "The" --prompt "The people of" --prompt "" --max-new-tokens 40 --seed 9)
"$bin" "${gen[@]}" >"$tmp/gen.kv" 2>"$tmp/gen.kv.err" && "$bin" "${gen[@]}" --no-kv-cache >"$tmp/gen.full" 2>/dev/null \
  && cmp -s "$tmp/gen.kv" "$tmp/gen.full" && [ "$(wc -l <"$tmp/gen.kv")" -ge 3 ] \
  && grep -q "of 3 stopped at the context.s end (32 positions)" "$tmp/gen.kv.err" \
  && ok "generate: KV cache = whole-context recompute for 3 prompts; $(cat "$tmp/gen.kv.err")" \
  || { fail "generate with and without the KV cache"; cat "$tmp/gen.kv.err"; }

# --- bad input: exit 2, named, and no run directory left behind
expect 2 "already holds a run: pass --resume" train --config "$tmp/teacher.yaml"
expect 2 "nope.bin" train --config "$tmp/teacher.yaml" --set run.name=x1 --set data.train="$tmp/nope.bin"
[ ! -e "$tmp/runs/x1" ] && ok "no run directory after a missing shard" || fail "run directory x1 left behind"
head -c 100 "$tmp/prep/train.bin" >"$tmp/short.bin"
expect 2 "short.bin" train --config "$tmp/teacher.yaml" --set run.name=x2 --set data.train="$tmp/short.bin"
[ ! -e "$tmp/runs/x2" ] && ok "no run directory after a truncated shard" || fail "run directory x2 left behind"
expect 2 "outside the model's vocabulary of 100" train --config "$tmp/teacher.yaml" --set run.name=x3 --set model.vocab=100
# a student whose vocabulary is padded past the tokenizer's distills from the 300-token teacher
"$bin" distill --config "$tmp/student.yaml" --set run.name=padded --set model.vocab=320 >"$tmp/padded.log" 2>&1 \
  && grep -q '"agreement"' "$tmp/runs/padded/metrics.jsonl" \
  && ok "a padded-vocabulary student (320 rows, tokenizer <= 300) distills from a 300-row teacher" \
  || { fail "padded vocabulary distillation"; tail -3 "$tmp/padded.log"; }
# without a tokenizer nothing says the extra rows are padding: refused, naming both sizes
mkdir -p "$tmp/notok" && cp "$tmp/prep/train.bin" "$tmp/prep/val.bin" "$tmp/notok/"
"$bin" train --config "$tmp/teacher.yaml" --set run.name=teacher-notok --set data.train="$tmp/notok/train.bin" \
  --set data.val="$tmp/notok/val.bin" --set train.steps=2 --set optim.warmup_steps=0 >/dev/null 2>&1 || fail "teacher without tokenizer"
expect 2 "has a vocabulary of 300 tokens but model.vocab is 320" distill --config "$tmp/student.yaml" --set run.name=x4 \
  --set model.vocab=320 --set teacher.checkpoint="$tmp/runs/teacher-notok/checkpoints/step-00000002.h5" \
  --set data.train="$tmp/notok/train.bin" --set data.val="$tmp/notok/val.bin"
[ ! -e "$tmp/runs/x4" ] && ok "no run directory after a teacher vocabulary mismatch" || fail "run directory x4 left behind"
expect 2 "not a kdtrain checkpoint" eval "$tmp/prep/tokenizer.json"
# a checkpoint cut short (an interrupted copy); flipped bytes inside tensors are caught by
# their Fletcher-32 checksums (tests/test_checkpoint.cpp)
head -c $(( $(stat -c %s "$tckpt") / 2 )) "$tckpt" >"$tmp/corrupt.h5"
expect 2 "corrupt.h5" eval "$tmp/corrupt.h5"
expect 2 "no checkpoint to resume" train --resume "$tmp/prep"
long=$(printf 'the people of the union %.0s' $(seq 1 40))
expect 2 "longer than the model's context of 32 tokens" generate "$tckpt" --prompt "$long"
expect 2 "lower --batch, --context or the prompts" generate "$tckpt" --prompt "a" --context 1000000000 --batch 64
expect 2 "--prompt-tokens 32 leaves no room in the teacher's context of 32 tokens" generate-data "$tckpt" --out "$tmp/gdx" --prompt-tokens 32
expect 2 "--data: $tmp/none.bin: no such file (the prompt data)" generate-data "$tckpt" --out "$tmp/gdx" --data "$tmp/none.bin"
[ ! -e "$tmp/gdx/train.bin" ] && ok "no shard after a refused generate-data" || fail "generate-data left $tmp/gdx/train.bin"
expect 2 "train: the config has a teacher section" train --config "$tmp/student.yaml" --set run.name=x5

[ $fails -eq 0 ] && echo "all product-path checks passed" || echo "$fails product-path check(s) failed"
exit $((fails > 0))
