#!/usr/bin/env bash
# kdtrain sweep without SLURM: expansion, validation and --local runs.
# - an invalid point: exit 2 naming the point, its values and the key; nothing written;
# - an unknown key in the sweep file, a missing base, a directory that is not a sweep: exit 2
#   naming file:line:column, the file, the directory;
# - --no-submit writes one config per point and the array job script;
# - --local runs 2 points (a grid of 1 x a list of 2) one after another; --summary tabulates
#   them; the same sweep run again continues its runs (--auto-resume) instead of refusing.
# Usage: test_sweep.sh <kdtrain binary> <repo root>
set -u
bin=$(realpath "$1")
root=$(realpath "$2")
source "$(dirname "$0")/lib.sh"
cd "$tmp"
cp "$root/configs/demo-synthetic.yaml" base.yaml
printf '%s\n' 'base: base.yaml' 'name: small' \
  'set: {train.steps: 12, optim.warmup_steps: 2, distill.teacher_pretrain_steps: 5, train.threads: 1}' \
  'grid:' '  distill.temperature: [2.0]' 'list:' '  - {distill.divergence: forward_kl}' \
  '  - {distill.divergence: jsd, distill.alpha: 0.8}' \
  'slurm: {ntasks: 2, cpus_per_task: 1, time: "00:10:00", max_concurrent: 1}' >good.yaml

sed 's/forward_kl}/forward_kl, distill.alpha: 2.5}/' good.yaml >bad.yaml
expect 2 "bad.yaml: point p000 (distill.temperature=2.0, distill.divergence=forward_kl, distill.alpha=2.5) is invalid" sweep bad.yaml
grep -q "distill.alpha = 2.5 is out of range" "$tmp/err" && [ ! -e sweeps ] && ok "  ... naming the key; nothing written" \
  || fail "invalid point: key not named or files written"
printf 'base: base.yaml\ngrid: {distill.alpha: [0.5]}\nsurm: {ntasks: 2}\n' >typo.yaml
expect 2 "typo.yaml:3:1: unknown key 'surm'" sweep typo.yaml
printf 'base: nowhere.yaml\ngrid: {distill.alpha: [0.5]}\n' >nobase.yaml
expect 2 "nobase.yaml:1:7: base nowhere.yaml: cannot open the config file" sweep nobase.yaml
expect 2 "--summary $tmp: not a sweep directory" sweep --summary "$tmp"

"$bin" sweep good.yaml --no-submit >nosub.out 2>&1 || { fail "--no-submit"; cat nosub.out; }
if [ -f sweeps/small/points/p000.yaml ] && [ -f sweeps/small/points/p001.yaml ] \
   && grep -q '^#SBATCH --array=0-1%1$' sweeps/small/sweep.sbatch && grep -q '^#SBATCH --ntasks=2$' sweeps/small/sweep.sbatch \
   && grep -q '^#SBATCH --time=00:10:00$' sweeps/small/sweep.sbatch && grep -q 'divergence: jsd' sweeps/small/points/p001.yaml; then
  ok "--no-submit: 2 configs and an array job 0-1%1 of 2 ranks"
else
  fail "--no-submit output"; cat nosub.out sweeps/small/sweep.sbatch
fi
"$bin" sweep good.yaml --local >local.out 2>&1 || { fail "--local"; cat local.out sweeps/small/logs/*.out; }
"$bin" sweep --summary sweeps/small >summary.out 2>&1 || fail "--summary"
if grep -qE '^\| p000 \| 2\.0 \| forward_kl \| - \| 12/12 \| [0-9.]+ ' summary.out \
   && grep -qE '^\| p001 \| 2\.0 \| jsd \| 0\.8 \| 12/12 \| [0-9.]+ ' summary.out && [ "$(wc -l <sweeps/small/summary.csv)" = 3 ]; then
  ok "--local then --summary: 2 points of 12 steps tabulated (Markdown and CSV)"
else
  fail "--summary table"; cat local.out summary.out
fi
"$bin" sweep good.yaml --local >again.out 2>&1 && grep -q "2 of 2 points done" again.out \
  && grep -q "resumed from" sweeps/small/logs/p000.out && ok "the same sweep run again continues its runs" \
  || { fail "rerun"; cat again.out; }

[ "$fails" -eq 0 ] && echo "all sweep checks passed" || { echo "$fails failure(s)"; exit 1; }
