#!/usr/bin/env bash
# No command writes over its own input, or over an existing output without --overwrite
# (trainer/cli/output_path.h): ptq, export (--compact, --format hf, --format gguf), import-hf,
# prepare; and bench --checkpoint-dir, whose scratch files must not land on someone else's. Refused outputs exit 2 naming the path (and --overwrite) with the file untouched;
# an output that is the input is refused even with --overwrite.
# Usage: test_outputs.sh <kdtrain binary> <repo root>
set -u
bin=$1
root=$2
source "$(dirname "$0")/lib.sh"

prepare_corpus
train_tiny m "$tmp/prep" "vocab: 300, d_model: 32, n_layers: 2, n_heads: 4, n_kv_heads: 2, d_ff: 64, tie_embeddings: true"
ck=$tmp/runs/m/checkpoints/step-00000002.h5
cp "$ck" "$tmp/ck.orig"
unchanged() { cmp -s "$ck" "$tmp/ck.orig" && ok "  $1: the input is unchanged" || fail "$1: the input checkpoint changed"; }

# output == input: refused, --overwrite or not (also through another name for the same file)
expect 2 "is its input" ptq "$ck" --out "$ck"
unchanged "ptq X --out X"
expect 2 "is its input" ptq "$ck" --out "$ck" --overwrite
ln -s "$ck" "$tmp/alias.h5"
expect 2 "is its input" ptq "$ck" --out "$tmp/alias.h5" --overwrite
unchanged "ptq X --out <symlink to X> --overwrite"
expect 2 "is its input" export "$ck" --out "$ck" --compact --overwrite
expect 2 "is its input" export "$ck" --out "$ck" --format gguf --overwrite
unchanged "export X --out X"

# an existing output: refused without --overwrite, replaced with it
echo keep >"$tmp/exists.h5"
expect 2 "--overwrite" ptq "$ck" --out "$tmp/exists.h5" --batches 0
[ "$(cat "$tmp/exists.h5")" = keep ] && ok "  ptq: the existing file is untouched" || fail "ptq replaced an existing file"
"$bin" ptq "$ck" --out "$tmp/exists.h5" --batches 0 --overwrite >/dev/null 2>&1 && "$bin" inspect --verify "$tmp/exists.h5" >/dev/null 2>&1 \
  && ok "ptq --overwrite: replaced, and it verifies" || fail "ptq --overwrite"
echo keep >"$tmp/exists.gguf"
expect 2 "--overwrite" export "$ck" --out "$tmp/exists.gguf" --format gguf
[ "$(cat "$tmp/exists.gguf")" = keep ] || fail "export gguf replaced an existing file"
"$bin" export "$ck" --out "$tmp/exists.gguf" --format gguf --overwrite >/dev/null 2>&1 && [ "$(head -c4 "$tmp/exists.gguf")" = GGUF ] \
  && ok "export --format gguf --overwrite: replaced" || fail "export gguf --overwrite"
mkdir -p "$tmp/hf" && echo mine >"$tmp/hf/notes.txt"
expect 2 "--overwrite" export "$ck" --out "$tmp/hf" --format hf
[ -f "$tmp/hf/notes.txt" ] && [ ! -e "$tmp/hf/config.json" ] && ok "  export hf: the existing directory is untouched" \
  || fail "export hf wrote into an existing directory"
"$bin" export "$ck" --out "$tmp/hf" --format hf --overwrite >/dev/null 2>&1 && [ -f "$tmp/hf/config.json" ] \
  && [ ! -e "$tmp/hf/notes.txt" ] && ! ls -d "$tmp"/hf.tmp* >/dev/null 2>&1 \
  && ok "export --format hf --overwrite: the directory replaced as a whole, no temporary left" || fail "export hf --overwrite"
mkdir -p "$tmp/empty"
"$bin" export "$ck" --out "$tmp/empty" --format hf >/dev/null 2>&1 && [ -f "$tmp/empty/config.json" ] \
  && ok "export --format hf into an empty directory" || fail "export hf into an empty directory"
expect 2 "--overwrite" import-hf "$root/tests/fixtures/hf_tiny" --out "$tmp/exists.h5"
"$bin" import-hf "$root/tests/fixtures/hf_tiny" --out "$tmp/exists.h5" --overwrite >/dev/null 2>&1 \
  && ok "import-hf --overwrite" || fail "import-hf --overwrite"
expect 2 "--overwrite" prepare "$root/tests/data" --out "$tmp/prep" --vocab-size 300
"$bin" prepare "$root/tests/data" --out "$tmp/prep" --vocab-size 300 --val-every 3 --overwrite >/dev/null 2>&1 \
  && ok "prepare --overwrite" || fail "prepare --overwrite"
expect 2 "is its input" prepare "$root/tests/data" --out "$tmp/prep" --tokenizer "$tmp/prep/tokenizer.json" --overwrite
cp -r "$tmp/prep" "$tmp/prep2"
expect 2 "is its input" prepare "$tmp/prep2" --out "$tmp/prep2" --overwrite

# bench --checkpoint-dir writes and deletes step-N.h5 / stall-N.h5 / spare-N.h5 / floor.bin: never over files it did not make
cat >"$tmp/b.yaml" <<YAML
model: {vocab: 64, d_model: 16, n_layers: 1, n_heads: 2, n_kv_heads: 1, d_ff: 32, tie_embeddings: true}
train: {steps: 4, batch_size: 2, seq_len: 16, seed: 1, threads: 1}
data: {kind: markov, markov_support: 4}
YAML
mkdir -p "$tmp/bd" && echo mine >"$tmp/bd/step-00000000.h5"
expect 2 "step-00000000.h5 exists" bench --config "$tmp/b.yaml" --student-only --checkpoint --checkpoint-dir "$tmp/bd" \
  --peak-gflops 1
[ "$(cat "$tmp/bd/step-00000000.h5" 2>/dev/null)" = mine ] && ok "  bench: the file in --checkpoint-dir is untouched" \
  || fail "bench --checkpoint-dir replaced or deleted a file it did not make"
mkdir -p "$tmp/bd2" && echo mine >"$tmp/bd2/spare-2.h5"
expect 2 "spare-2.h5 exists" bench --config "$tmp/b.yaml" --student-only --checkpoint --checkpoint-dir "$tmp/bd2" \
  --peak-gflops 1
[ "$(cat "$tmp/bd2/spare-2.h5" 2>/dev/null)" = mine ] && ok "  bench: a stall file in --checkpoint-dir is untouched" \
  || fail "bench --checkpoint-dir replaced or deleted a stall file it did not make"
mkdir -p "$tmp/bd3" && echo mine >"$tmp/bd3/floor.bin"
expect 2 "floor.bin exists" bench --config "$tmp/b.yaml" --student-only --checkpoint --checkpoint-dir "$tmp/bd3" \
  --peak-gflops 1
[ "$(cat "$tmp/bd3/floor.bin" 2>/dev/null)" = mine ] && ok "  bench: the disk floor's file in --checkpoint-dir is untouched" \
  || fail "bench --checkpoint-dir replaced or deleted a floor.bin it did not make"
# a run: the directory left as it was found (its own files deleted), and the RESULT line with
# every measure of the stall (the disk's floor and the machine's core time included)
mkdir -p "$tmp/bd4" && echo mine >"$tmp/bd4/other.txt"
if "$bin" bench --config "$tmp/b.yaml" --student-only --checkpoint --checkpoint-dir "$tmp/bd4" --peak-gflops 1 \
    >"$tmp/bench4.out" 2>&1; then
  [ "$(ls "$tmp/bd4")" = other.txt ] && ok "  bench: --checkpoint-dir holds only what was there before" \
    || fail "bench --checkpoint-dir left files behind: $(ls "$tmp/bd4" | tr '\n' ' ')"
  line=$(grep '^RESULT.*checkpoint_mb=' "$tmp/bench4.out")
  missing=""
  for k in write_s read_disk_s stall_frac block_frac stall_floor_frac stall_over_floor_frac stall_host_s \
      stall_kernel_s stall_host_frac floor_host_s floor_kernel_s floor_host_frac; do
    echo "$line" | grep -qE "(^| )$k=-?[0-9]+\.[0-9]+( |$)" || missing="$missing $k"
  done
  echo "$line" | grep -qE ' cores=[1-9][0-9]* ' || missing="$missing cores"
  [ -z "$missing" ] && ok "  bench --checkpoint: the RESULT line has every measure of the stall" \
    || fail "bench --checkpoint's RESULT line lacks:$missing ($line)"
else
  fail "bench --checkpoint failed: $(tail -3 "$tmp/bench4.out")"
fi

[ "$fails" -eq 0 ] && echo "all output checks passed" || { echo "$fails failure(s)"; exit 1; }
