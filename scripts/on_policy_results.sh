#!/usr/bin/env bash
# The on-policy distillation study of docs/generation.md, on the demo corpus and the demo
# teacher (scripts/demo.sh), its student (configs/demo/student-kd.yaml: d_model 128, 2 blocks,
# batch 16 × 128 tokens, STEPS steps, data order data.seed 1), per seed:
#   off-policy   today's distillation: forward KL at T = 1 with CE (alpha 0.2) on the data;
#   on-policy    distill.on_policy with fraction 0.5 and 1.0, reverse KL (GKD's token-level
#                form) and JSD (β 0.5): prompts of 32 tokens of each sampled sequence, 96
#                sampled at temperature 1;
#   seq-KD       kdtrain generate-data: the teacher's greedy continuations (96 tokens) of
#                32-token prompts, STEPS × 16 documents, then the off-policy distillation on
#                that shard (Kim & Rush's sequence-level KD with word-level KD).
# Warm start (GKD's setting: the student is trained before on-policy distillation): each
# seed's off-policy student at STEPS continues WARM_STEPS (100) more steps off-policy, or
# on-policy (λ 0.5 and 1 with reverse KL, λ 0.5 with JSD), at a constant learning rate of 3e-4.
# Every run evaluates every 25 steps and at its end: 32,768 validation tokens (bits per byte),
# and 16 validation prompts continued by the student at temperature 1 (the teacher's NLL of
# the samples, the student's entropy, distinct bigrams).
# Equal steps: each run's final evaluation. Equal wall-clock: each run's last evaluation at
# or before the off-policy run's (same seed) final time; seq-KD's generation time is added to
# its own.
# Usage: scripts/on_policy_results.sh [teacher checkpoint]; SEEDS ("1 2"), STEPS (300),
#        WARM_STEPS (100), RUNS (runs/on-policy), OUT (RUNS/results.md), KD (build/kdtrain).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
kd=${KD:-./build/kdtrain}
teacher=${1:-runs/demo/demo-teacher/checkpoints/step-00001000.h5}
seeds=${SEEDS:-1 2}
steps=${STEPS:-300}
warm_steps=${WARM_STEPS:-100}
runs=${RUNS:-runs/on-policy}
out=${OUT:-$runs/results.md}
[ -f "$teacher" ] || { echo "on_policy_results.sh: no teacher checkpoint $teacher (run scripts/demo.sh first)" >&2; exit 2; }
mkdir -p "$runs/logs"

common=(--set teacher.checkpoint="$teacher" --set train.steps="$steps" --set data.seed=1 --set run.dir="$runs"
        --set optim.warmup_steps=$(( steps < 40 ? 1 : 20 ))
        --set train.eval_every=25 --set train.eval_tokens=32768 --set train.checkpoint_every="$steps" --overwrite)
onp() { echo --set distill.on_policy.fraction="$1" --set distill.divergence="$2" --set distill.on_policy.prompt_tokens=32 \
  --set distill.on_policy.max_new_tokens=96; }

# seq-KD's data once: as many documents as the students read sequences
if [ ! -f "$runs/seqkd-data/train.bin" ]; then
  start=$(date +%s.%N)
  $kd generate-data "$teacher" --out "$runs/seqkd-data" --sequences $(( steps * 16 )) --prompt-tokens 32 \
    --max-new-tokens 96 --batch 32 --overwrite >"$runs/logs/seqkd-data.log" 2>&1
  awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", b - a }' >"$runs/seqkd-data/seconds"
fi
gen_s=$(cat "$runs/seqkd-data/seconds")

variants=("off-policy||" "on-policy λ=0.5 RKL|$(onp 0.5 reverse_kl)|" "on-policy λ=0.5 JSD|$(onp 0.5 jsd)|"
          "on-policy λ=1 RKL|$(onp 1.0 reverse_kl)|" "on-policy λ=1 JSD|$(onp 1.0 jsd)|"
          "seq-KD|--set data.train=$runs/seqkd-data/train.bin|$gen_s")
name_of() { echo "$1" | tr -c 'a-zA-Z0-9.\n' '-' | tr -s '-'; }
for seed in $seeds; do
  for v in "${variants[@]}"; do
    IFS='|' read -r label flags _ <<<"$v"
    name=$(name_of "$label")-s$seed
    [ -f "$runs/$name/checkpoints/step-$(printf %08d "$steps").h5" ] && continue
    # shellcheck disable=SC2086
    $kd distill --config configs/demo/student-kd.yaml "${common[@]}" --set train.seed="$seed" --set run.name="$name" \
      $flags >"$runs/logs/$name.log" 2>&1
  done
done

# warm starts from each seed's off-policy student
warm=("warm off-policy||" "warm on-policy λ=0.5 RKL|$(onp 0.5 reverse_kl)|" "warm on-policy λ=1 RKL|$(onp 1.0 reverse_kl)|"
      "warm on-policy λ=0.5 JSD|$(onp 0.5 jsd)|")
for seed in $seeds; do
  init=$runs/off-policy-s$seed/checkpoints/step-$(printf %08d "$steps").h5
  for v in "${warm[@]}"; do
    IFS='|' read -r label flags _ <<<"$v"
    name=$(name_of "$label")-s$seed
    [ -f "$runs/$name/checkpoints/step-$(printf %08d "$warm_steps").h5" ] && continue
    # shellcheck disable=SC2086
    $kd distill --config configs/demo/student-kd.yaml "${common[@]}" --set train.seed="$seed" --set run.name="$name" \
      --set train.init_from="$init" --set train.steps="$warm_steps" --set train.checkpoint_every="$warm_steps" \
      --set optim.warmup_steps=1 --set optim.schedule=constant --set optim.lr=3.0e-4 $flags >"$runs/logs/$name.log" 2>&1
  done
done

# the table: per variant, the two seeds' values "a / b" and their mean
/usr/bin/python3 - "$runs" "$out" "$steps" "$seeds" "$warm_steps" "${variants[@]}" "${warm[@]}" <<'PY'
import json, re, sys
runs, out, steps, seeds, warm_steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split(), int(sys.argv[5])
variants = [v.split("|") for v in sys.argv[6:] if not v.startswith("warm")]
warm = [v.split("|") for v in sys.argv[6:] if v.startswith("warm")]
name_of = lambda label: re.sub("-+", "-", re.sub("[^a-zA-Z0-9.]", "-", label))
def lines(name):
    with open(f"{runs}/{name}/metrics.jsonl") as f:
        return [json.loads(l) for l in f if l.strip()]
keys = [("val_bpb", "bpb"), ("sample_teacher_nll", "teacher NLL"), ("sample_entropy", "entropy"),
        ("sample_distinct2", "distinct-2")]
rows = {}
for label, _, extra in variants + warm:
    base = "warm-off-policy" if label.startswith("warm") else "off-policy"
    for seed in seeds:
        ev = [l for l in lines(f"{name_of(label)}-s{seed}") if l["type"] == "eval"]
        off = [l for l in lines(f"{base}-s{seed}") if l["type"] == "eval"][-1]["time_s"]
        cost = float(extra) if extra else 0.0
        final = ev[-1]
        at_clock = [l for l in ev if l["time_s"] + cost <= off + 1e-9]
        rows.setdefault(label, []).append((final, at_clock[-1] if at_clock else None, final["time_s"] + cost))
def cell(vals, fmt="%.4f"):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    return " / ".join(fmt % v for v in vals) + (f" (mean {fmt % (sum(vals) / len(vals))})" if len(vals) > 1 else "")
def table(f, heading, labels, equal_steps):
    """One table: each variant's final evaluation (equal steps) or its last one within the
    reference run's time (equal wall-clock)."""
    first = "wall s" if equal_steps else "step"
    f.write(heading + f"\n\n| variant | {first} | " + " | ".join(h for _, h in keys) + " |\n")
    f.write("|---|---|" + "---|" * len(keys) + "\n")
    for label, _, _ in labels:
        r = rows[label]
        if equal_steps:
            lead, ev = cell([x[2] for x in r], "%.0f"), [x[0] for x in r]
        else:
            lead, ev = cell([x[1]["step"] if x[1] else None for x in r], "%d"), [x[1] for x in r]
        f.write(f"| {label} | {lead} | " + " | ".join(cell([e.get(k) if e else None for e in ev]) for k, _ in keys) +
                " |\n")
with open(out, "w") as f:
    f.write(f"# On-policy distillation study (scripts/on_policy_results.sh): seeds {' / '.join(seeds)}\n\n")
    table(f, f"## Equal steps ({steps})", variants, True)
    table(f, "\n## Equal wall-clock (the off-policy run's time, same seed)", variants, False)
    table(f, f"\n## Warm start: {warm_steps} more steps from the off-policy student at step {steps}\n\nEqual steps:",
          warm, True)
    table(f, "\nEqual wall-clock (the warm off-policy run's time):", warm, False)
print(open(out).read())
PY
# the curves: validation bits per byte against wall-clock time, seed 1
/usr/bin/python3 scripts/plot.py $(for v in "${variants[@]}"; do IFS='|' read -r label _ _ <<<"$v"; echo "$runs/$(name_of "$label")-s1"; done) \
  --labels "$(for v in "${variants[@]}"; do IFS='|' read -r label _ _ <<<"$v"; printf '%s,' "$label"; done | sed 's/,$//')" \
  --out "$runs/on_policy.png" >/dev/null && echo "plot: $runs/on_policy.png"
