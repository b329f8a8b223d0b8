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
