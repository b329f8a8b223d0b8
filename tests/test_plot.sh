#!/usr/bin/env bash
# Test for scripts/plot.py (training-curve plots from metrics.jsonl).
#
# Usage: tests/test_plot.sh [path/to/plot.py]
# Exit status: 0 pass, 1 fail, 77 skip (no /usr/bin/python3 with matplotlib;
# register in CTest with SKIP_RETURN_CODE 77).
set -u

here="$(cd "$(dirname "$0")" && pwd)"
plot="${1:-$here/../scripts/plot.py}"
py="${KDTRAIN_PLOT_PYTHON:-/usr/bin/python3}"

if [ ! -f "$plot" ]; then
    echo "FAIL: plot script not found: $plot"
    exit 1
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/test_plot.XXXXXX")" || { echo "FAIL: mktemp"; exit 1; }
trap 'rm -rf "$tmp"' EXIT
# Keep matplotlib's font cache out of $HOME (read-only or shared in CI).
export MPLCONFIGDIR="$tmp/mplconfig"

if [ ! -x "$py" ] || ! "$py" -c 'import matplotlib' >/dev/null 2>&1; then
    echo "SKIP: python3-matplotlib not installed ($py cannot import matplotlib)"
    exit 77
fi

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

is_png() {  # non-empty file starting with the 8-byte PNG signature
    [ -s "$1" ] && [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ]
}

# Two fake runs: a CE baseline (no agreement; panel d falls back to lr) and a
# KD run with teacher agreement, plus an unknown key and an unknown line type.
write_run() {  # dir with_agreement
    mkdir -p "$1"
    "$py" - "$1/metrics.jsonl" "$2" <<'EOF'
import json, math, sys
path, agree = sys.argv[1], sys.argv[2] == "1"
with open(path, "w") as f:
    f.write(json.dumps({"type": "config", "note": "ignored"}) + "\n")
    for s in range(1, 201, 10):
        ce = 2.0 + 8.0 * math.exp(-s / 50)
        f.write(json.dumps({"type": "train", "step": s, "tokens": s * 1024,
                            "time_s": s * 0.05, "loss": ce + 0.3, "ce": ce,
                            "kd": 0.3, "feat": 0.0, "lr": 1e-3, "grad_norm": 1.0,
                            "tokens_per_s": 20480.0, "future_key": [1, 2]}) + "\n")
        if s % 50 == 1:
            ev = {"type": "eval", "step": s, "tokens": s * 1024, "time_s": s * 0.05 + 0.5,
                  "val_loss": ce, "val_ppl": math.exp(ce), "val_bpb": ce / math.log(2) / 4}
            if agree:
                ev["agreement"] = 0.3 + s / 500
                ev["val_kl"] = 0.1
            f.write(json.dumps(ev) + "\n")
EOF
}
write_run "$tmp/runs/baseline" 0 || { echo "FAIL: could not write fake run"; exit 1; }
write_run "$tmp/runs/kd" 1 || { echo "FAIL: could not write fake run"; exit 1; }

# 1. Two runs overlaid, explicit --out and --labels.
out="$tmp/plots/curves.png"
if stdout="$("$py" "$plot" "$tmp/runs/baseline" "$tmp/runs/kd" --out "$out" \
        --labels "CE only,KD" 2>"$tmp/err1")"; then
    is_png "$out" || fail "--out $out is missing, empty or not a PNG"
    [ "$stdout" = "$out" ] || fail "expected the output path on stdout, got: $stdout"
else
    fail "plot.py exited $? on two valid runs: $(cat "$tmp/err1")"
fi

# 2. Default output path: <first run dir>/curves.png.
if "$py" "$plot" "$tmp/runs/kd" >/dev/null 2>"$tmp/err2"; then
    is_png "$tmp/runs/kd/curves.png" || fail "default output $tmp/runs/kd/curves.png missing or not a PNG"
else
    fail "plot.py exited $? on one valid run: $(cat "$tmp/err2")"
fi

# 3. A malformed line: exit 2, message names file:line.
mkdir -p "$tmp/runs/broken"
{
    echo '{"type": "train", "step": 1, "ce": 3.0, "loss": 3.0}'
    echo
    echo '{"type": "train", "step": 2, "ce": 2.9, '
} > "$tmp/runs/broken/metrics.jsonl"
"$py" "$plot" "$tmp/runs/baseline" "$tmp/runs/broken" --out "$tmp/broken.png" >/dev/null 2>"$tmp/err3"
rc=$?
[ "$rc" -eq 2 ] || fail "malformed line: expected exit 2, got $rc"
grep -q "runs/broken/metrics.jsonl:3" "$tmp/err3" \
    || fail "malformed line: message does not name file:line: $(cat "$tmp/err3")"

# 4. A run dir without metrics.jsonl: exit 2.
mkdir -p "$tmp/runs/nometrics"
"$py" "$plot" "$tmp/runs/nometrics" --out "$tmp/none.png" >/dev/null 2>"$tmp/err4"
rc=$?
[ "$rc" -eq 2 ] || fail "missing metrics.jsonl: expected exit 2, got $rc"
grep -q "metrics.jsonl" "$tmp/err4" || fail "missing metrics.jsonl: unclear message: $(cat "$tmp/err4")"

# 5. --sparsity: IMP-like runs (one eval line per round, with its sparsity) -> one PNG;
#    runs without any sparsity -> exit 2.
for seed in 1 2; do
    mkdir -p "$tmp/runs/lth-imp-s$seed"
    for r in 0 1 2 3; do
        printf '{"type":"eval","step":%d,"sparsity":%s,"val_ppl":%d}\n' $((r * 10)) \
            "$(awk -v r=$r 'BEGIN { print 1 - 0.8 ^ r }')" $((300 - 20 * r - seed))
    done >"$tmp/runs/lth-imp-s$seed/metrics.jsonl"
done
if "$py" "$plot" --sparsity "$tmp/runs/lth-imp-s1" "$tmp/runs/lth-imp-s2" --out "$tmp/sp.png" >/dev/null 2>"$tmp/err5"; then
    is_png "$tmp/sp.png" || fail "--sparsity: $tmp/sp.png missing or not a PNG"
else
    fail "--sparsity exited $? on two IMP runs: $(cat "$tmp/err5")"
fi
"$py" "$plot" --sparsity "$tmp/runs/baseline" --out "$tmp/sp2.png" >/dev/null 2>"$tmp/err6"
rc=$?
[ "$rc" -eq 2 ] && grep -q "sparsity" "$tmp/err6" || fail "--sparsity without sparsity lines: rc $rc, $(cat "$tmp/err6")"

if [ "$failures" -ne 0 ]; then
    echo "test_plot: $failures failure(s)"
    exit 1
fi
echo "test_plot: PASS"
exit 0
