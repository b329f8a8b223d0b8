#!/usr/bin/env bash
# Input holes of issue 20, each an exit 2 naming the file, key or option (or, for thread
# counts, a capped run): FIFOs and other non-regular files as inputs, absurd thread counts,
# inf/NaN values, YAML complex keys and second documents, run names leaving run.dir,
# models too big for the machine, shards made with another tokenizer, zeroed shard
# headers, a shard of exactly one window.
# Usage: test_input_holes.sh <kdtrain binary> <repo root>
set -u
kd=$1
root=$2
source "$(dirname "$0")/lib.sh"
export OMP_NUM_THREADS=2

# Every kdtrain call runs under a timeout: a hang (open() on a FIFO blocks until a writer
# comes) fails the test instead of stalling it. The limits only stop hangs; nothing is timed.
bin=$tmp/kd
printf '#!/bin/sh\nexec timeout -k 10 "${KD_TIMEOUT:-300}" "%s" "$@"\n' "$kd" >"$bin"
chmod +x "$bin"

prepare_corpus
"$bin" prepare "$root/tests/data" --out "$tmp/prepB" --vocab-size 280 --val-every 3 >/dev/null || fail "prepare B"
model="vocab: 300, d_model: 16, n_layers: 1, n_heads: 2, n_kv_heads: 1, d_ff: 32, tie_embeddings: true"
train_tiny tiny "$tmp/prep" "$model" 2
ckpt=$tmp/runs/tiny/checkpoints/step-00000002.h5
[ -f "$ckpt" ] || fail "no checkpoint $ckpt"
cfg=$tmp/tiny.yaml
# no_run NAME: the refused command left no run directory NAME
no_run() { [ ! -e "$tmp/runs/$1" ] && ok "no run directory $1 was left" || fail "run directory $1 was left behind"; }

# --- (5) non-regular files: refused by name, without blocking
mkfifo "$tmp/fifo.bin"
export KD_TIMEOUT=120
expect 2 "fifo.bin: not a regular file" eval "$ckpt" --data "$tmp/fifo.bin"
expect 2 "fifo.bin: not a regular file" train --config "$cfg" --set run.name=fifo_train --set data.train="$tmp/fifo.bin"
no_run fifo_train
expect 2 "fifo.bin: not a regular file" train --config "$cfg" --set run.name=fifo_val --set data.val="$tmp/fifo.bin"
no_run fifo_val
# a shard path that names nothing: the key that holds it (found by fuzz_inputs, seed 22)
expect 2 "data.val: -1: no such file" train --config "$cfg" --set run.name=noval --set data.val=-1
no_run noval
expect 2 "fifo.bin: not a regular file" train --config "$cfg" --set run.name=fifo_tok --set data.tokenizer="$tmp/fifo.bin"
expect 2 "fifo.bin: not a regular file" validate "$tmp/fifo.bin"
expect 2 "fifo.bin: not a regular file" eval "$tmp/fifo.bin"
expect 2 "prep: not a regular file" train --config "$cfg" --set run.name=dir_train --set data.train="$tmp/prep"
unset KD_TIMEOUT

# --- (6) a thread count beyond the machine is capped, saying so: 4096 threads hung with no
# output under a 4 GiB address-space limit. The limit grows with the cores (thread stacks and
# OpenBLAS buffers of a capped run on a big machine).
(ulimit -v $((4194304 + $(nproc) * 65536)) && "$bin" train --config "$cfg" --set run.name=threads --set train.threads=4096 \
  --set train.steps=1 --set train.checkpoint_every=1) >"$tmp/threads.out" 2>&1
rc=$?
if [ $rc -eq 0 ] && grep -q "train.threads 4096 is more than" "$tmp/threads.out"; then
  ok "train.threads=4096: capped ($(grep -m1 'train.threads 4096' "$tmp/threads.out"))"
else
  fail "train.threads=4096: rc=$rc"; tail -5 "$tmp/threads.out" | sed 's/^/    /'
fi

# --- (7) values that passed validation but are nonsense
export KD_TIMEOUT=120  # a NaN that slipped through could loop
expect 2 "--temperature" generate "$ckpt" --prompt "a" --max-new-tokens 2 --temperature nan
expect 2 "--temperature" generate "$ckpt" --prompt "a" --max-new-tokens 2 --temperature inf
expect 2 "--top-p" generate "$ckpt" --prompt "a" --max-new-tokens 2 --top-p nan
expect 2 "--seconds" bench-peak --seconds nan
unset KD_TIMEOUT
printf '%s\noptim: {grad_clip: .inf}\n' "model: {$model}" >"$tmp/inf.yaml"
expect 2 "inf.yaml:2:20: optim.grad_clip = inf is out of range" validate "$tmp/inf.yaml"
expect 2 "--set train.init_std: train.init_std = inf is out of range" validate "$cfg" --set train.init_std=.inf
printf '%s\n? [a, b]\n: 1\n' "model: {$model}" >"$tmp/complex.yaml"
expect 2 "complex.yaml:2:" validate "$tmp/complex.yaml"
printf '%s\n---\ntrain: {steps: 3}\n' "model: {$model}" >"$tmp/two.yaml"
expect 2 "two.yaml:3:1: a second YAML document" validate "$tmp/two.yaml"
mkdir -p "$tmp/a/b"
expect 2 "run.name" train --config "$cfg" --set run.dir="$tmp/a/b" --set run.name=../../escape
[ ! -e "$tmp/escape" ] && ok "run.name=../../escape wrote nothing outside run.dir" || fail "run.name=../../escape made $tmp/escape"
expect 2 "run.name" train --config "$cfg" --set run.name="$tmp/absolute"
[ ! -e "$tmp/absolute" ] && ok "an absolute run.name wrote nothing" || fail "an absolute run.name made $tmp/absolute"
# 2^24 x 65536 floats of embedding alone: 4 TiB
huge="--set model.vocab=16777216 --set model.d_model=65536 --set model.n_heads=64 --set model.n_kv_heads=64"
# shellcheck disable=SC2086
expect 2 "estimated memory" validate "$cfg" $huge
# shellcheck disable=SC2086
expect 2 "model.d_model" train --config "$cfg" --set run.name=huge $huge
no_run huge

# --- (8) shards
expect 2 "$tmp/prepB/val.bin" train --config "$cfg" --set run.name=valtok --set data.val="$tmp/prepB/val.bin"
grep -qF "$tmp/prep/" "$tmp/err" && ok "the mismatch names the training side too" || fail "the mismatch names one side only"
no_run valtok
expect 2 "$tmp/prepB/val.bin" eval "$ckpt" --data "$tmp/prepB/val.bin"
grep -qF "$ckpt" "$tmp/err" && ok "eval's mismatch names the checkpoint too" || fail "eval's mismatch names one side only"
cp "$tmp/prep/val.bin" "$tmp/zeroed.bin"
dd if=/dev/zero of="$tmp/zeroed.bin" bs=64 count=1 conv=notrunc 2>/dev/null
expect 2 "zeroed.bin: " eval "$ckpt" --data "$tmp/zeroed.bin"
# exactly seq_len + 1 = 17 tokens: one window
/usr/bin/python3 - "$tmp/window.bin" <<'PY'
import struct, sys
ids = list(range(1, 18))
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<IIII QQQ", 0x4B54444B, 1, 2, 0, len(ids), 0, 0) + bytes(24))
    f.write(struct.pack("<%dH" % len(ids), *ids))
PY
"$bin" train --config "$cfg" --set run.name=window --set data.train="$tmp/window.bin" --set train.steps=1 \
  --set train.batch_size=1 --set train.checkpoint_every=1 >"$tmp/window.out" 2>&1 \
  && ok "a shard of seq_len + 1 tokens trains (one window)" || { fail "one-window shard refused"; tail -3 "$tmp/window.out"; }

if [ $fails -ne 0 ]; then
  echo "$fails failure(s)"
  exit 1
fi
echo "all input-hole checks passed"
