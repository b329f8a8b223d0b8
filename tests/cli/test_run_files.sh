#!/usr/bin/env bash
# A run file that cannot be written is a runtime failure (exit 3) naming the file, never a
# run that reports success with a truncated metrics.jsonl or config copy: metrics.jsonl on a
# full disk (a symlink to /dev/full), and the config copy over a file-size limit (ulimit -f;
# kdtrain ignores SIGXFSZ, so the write fails with EFBIG).
# Usage: test_run_files.sh <kdtrain binary> <repo root>
set -u
bin=$1
root=$2
source "$(dirname "$0")/lib.sh"

cat >"$tmp/r.yaml" <<YAML
model: {vocab: 64, d_model: 16, n_layers: 1, n_heads: 2, n_kv_heads: 1, d_ff: 32, tie_embeddings: true}
optim: {lr: 1.0e-3, warmup_steps: 1}
train: {steps: 2, batch_size: 2, seq_len: 16, seed: 1, threads: 1}
data: {kind: markov, markov_support: 4}
run: {dir: $tmp/runs, name: r}
YAML
"$bin" train --config "$tmp/r.yaml" >"$tmp/r.log" 2>&1 || { fail "first run"; cat "$tmp/r.log"; }

# metrics.jsonl on a full disk: the resumed run must not end 0
ln -sf /dev/full "$tmp/runs/r/metrics.jsonl"
expect 3 "metrics.jsonl" train --resume "$tmp/runs/r" --set train.steps=4
ls "$tmp/runs/r/checkpoints/"step-00000004.h5 >/dev/null 2>&1 \
  && fail "a checkpoint of step 4 was written after metrics.jsonl failed" || ok "no checkpoint after the failed metrics write"

# the config copy over a file-size limit (the effective config is larger than 1 KiB)
cfg_size=$(wc -c <"$tmp/runs/r/config.yaml")
[ "$cfg_size" -gt 1024 ] || fail "config.yaml is only $cfg_size bytes: the ulimit case tests nothing"
(ulimit -f 1; "$bin" train --config "$tmp/r.yaml" --set run.name=small >"$tmp/out" 2>"$tmp/err"; echo $? >"$tmp/rc")
if [ "$(cat "$tmp/rc")" = 3 ] && grep -q "config.yaml" "$tmp/err"; then
  ok "ulimit -f 1: exit 3, $(head -1 "$tmp/err" | cut -c1-200)"
else
  fail "ulimit -f 1: rc $(cat "$tmp/rc") (want 3 naming config.yaml)"; cat "$tmp/err"
fi
[ ! -f "$tmp/runs/small/config.yaml" ] || [ "$(wc -c <"$tmp/runs/small/config.yaml")" -eq "$cfg_size" ] \
  || fail "a truncated config.yaml was left under its final name"

[ "$fails" -eq 0 ] && echo "all run file checks passed" || { echo "$fails failure(s)"; exit 1; }
