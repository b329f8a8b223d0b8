#!/usr/bin/python3
"""Markdown tables of the pruning study (scripts/prune_results.sh) from its run directories.

Rounds of the init-rewinding run train 150 steps each; its sparsities are IMP's.

Usage:
    prune_table.py lth RUNS                      lottery-ticket table (val perplexity per sparsity)
    prune_table.py structured RUNS TEACHER KD    structured vs unstructured, with eval tokens/s

lth reads RUNS/lth-{imp,reinit,rmask}-s*/metrics.jsonl (one eval line per IMP round, with
its sparsity) and RUNS/lth-oneshot*-s*/metrics.jsonl. structured reads the final eval of
RUNS/st-*-s*, compacts each structured run with `KD export --compact` and measures eval
tokens/s of every model (and of the unpruned TEACHER) with `KD eval` (the median of five,
all models interleaved), and the bpb of the st-*-raw-s* runs (pruned, not distilled).
Exit status 2 when a run is missing or malformed.
"""

import glob
import json
import os
import re
import statistics
import subprocess
import sys


def fail(msg):
    print(f"prune_table.py: {msg}", file=sys.stderr)
    sys.exit(2)


def evals(run):
    path = os.path.join(run, "metrics.jsonl")
    if not os.path.exists(path):
        fail(f"{path}: missing (run scripts/prune_results.sh)")
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            try:
                j = json.loads(line)
            except json.JSONDecodeError:
                fail(f"{path}:{n}: not JSON")
            if j.get("type") == "eval":
                out.append(j)
    if not out:
        fail(f"{path}: no eval line")
    return out


def seeds_of(runs, stem):
    found = sorted(glob.glob(os.path.join(runs, f"{stem}-s*")))
    return {re.sub(r".*-s(\d+)$", r"\1", r): r for r in found if os.path.isdir(r)}


def cell(values):
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ({' / '.join(f'{v:.1f}' for v in values)})"


def lth(runs):
    methods = [("imp", "IMP, late rewinding (step 15)"), ("reinit", "random reinit"), ("rmask", "random mask"),
               ("impinit", "IMP, rewinding to init"), ("implr", "IMP, LR rewinding")]
    curves = {}  # method -> sparsity (rounded %) -> [ppl per seed]
    seeds = set()
    for key, _ in methods:
        for seed, run in seeds_of(runs, f"lth-{key}").items():
            if key in ("imp", "reinit", "rmask"):
                seeds.add(seed)
            for e in evals(run):
                curves.setdefault(key, {}).setdefault(round(100 * e["sparsity"], 1), []).append(e["val_ppl"])
    if "imp" not in curves:
        fail(f"no {runs}/lth-imp-s* runs")
    print(f"Validation perplexity after each round (mean over seeds {', '.join(sorted(seeds))}; each seed in "
          "parentheses). Every round trains 150 steps (the first) or 135 (the later ones, from the rewind step).\n")
    shown = [(k, name) for k, name in methods if k in curves]
    print("| sparsity of the linear layers | " + " | ".join(name for _, name in shown) + " |")
    print("|---" * (len(shown) + 1) + "|")
    for sp in sorted(curves["imp"]):
        print(f"| {sp:.1f}% | " + " | ".join(cell(curves[k].get(sp, [])) for k, _ in shown) + " |")
    oneshot = {}
    for run in sorted(glob.glob(os.path.join(runs, "lth-oneshot*-s*"))):
        if not os.path.isdir(run):
            continue
        e = evals(run)[-1]
        oneshot.setdefault(round(100 * e["sparsity"], 1), []).append(e["val_ppl"])
    if oneshot:
        print("\nOne-shot: one round pruned straight to the sparsity from the dense 150-step weights, rewound to "
              "step 15 and retrained 135 steps, against IMP's round at the nearest sparsity.\n")
        print("| sparsity | one-shot | IMP round (its sparsity) |")
        print("|---|---|---|")
        imp_levels = sorted(curves["imp"])
        for sp in sorted(oneshot):
            near = min(imp_levels, key=lambda x: abs(x - sp))
            print(f"| {sp:.1f}% | {cell(oneshot[sp])} | {cell(curves['imp'][near])} ({near:.1f}%) |")


def run_json(args):
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        fail(f"{' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


ROUNDS = 5


def structured(runs, teacher, kd):
    variants = [("depth", "depth: 1 of 4 blocks (cosine importance)"), ("neurons", "FFN neurons: 34% per block"),
                ("unstr25", "unstructured magnitude 25%"), ("heads", "KV groups: 2 of 4 per block"),
                ("unstr13", "unstructured magnitude 13.3%")]

    def eval_json(ckpt):
        return json.loads(run_json([kd, "eval", ckpt, "--no-teacher", "--tokens", "0", "--json"]))

    rows = []  # (label, seed, kept %, bpb before distillation, checkpoint to time)
    for key, name in variants:
        for seed, run in seeds_of(runs, f"st-{key}").items():
            ckpts = sorted(glob.glob(os.path.join(run, "checkpoints", "step-*.h5")))
            if not ckpts:
                fail(f"{run}: no checkpoint")
            ckpt = ckpts[-1]
            kept = None
            for line in run_json([kd, "inspect", ckpt]).splitlines():
                m = re.search(r"linear layers .*: ([0-9.]+)% ", line)
                if m:
                    kept = 100 - float(m.group(1))
            raw = sorted(glob.glob(os.path.join(runs, f"st-{key}-raw-s{seed}", "checkpoints", "step-*.h5")))
            before = f"{eval_json(raw[-1])['val_bpb']:.4f}" if raw else "–"
            model = ckpt
            if not key.startswith("unstr"):
                model = ckpt[:-3] + "-compact.h5"
                run_json([kd, "export", ckpt, "--out", model, "--compact"])
            what = name + (" (compacted)" if model != ckpt else " (masked, dense shapes)")
            rows.append((what, seed, kept, before, model))
    # timing: every model once per round, ROUNDS rounds interleaved (the machine's drift hits
    # all models alike), the median per model
    models = [teacher] + [r[4] for r in rows]
    tps = {m: [] for m in models}
    bpb = {}
    for _ in range(ROUNDS):
        for m in models:
            j = eval_json(m)
            tps[m].append(j["tokens_per_s"])
            bpb[m] = j["val_bpb"]
    t_tps = statistics.median(tps[teacher])

    def spread(m):
        return f"{statistics.median(tps[m]):.0f} ({min(tps[m]):.0f}–{max(tps[m]):.0f})"

    print("Each model: the demo teacher pruned at step 0, distilled from the unpruned teacher; eval over the whole "
          f"validation split. Linear weights: q/k/v/o/gate/up/down (the embedding table is not pruned). Eval tokens/s: "
          f"median (min–max) of {ROUNDS} evals per model, all models interleaved.\n")
    print("| model | seed | linear weights | val bpb before distillation | val bpb after | eval tok/s | × teacher |")
    print("|---|---|---|---|---|---|---|")
    print(f"| unpruned teacher | – | 100% | – | {bpb[teacher]:.4f} | {spread(teacher)} | 1.00 |")
    for what, seed, kept, before, m in rows:
        print(f"| {what} | {seed} | {kept:.1f}% | {before} | {bpb[m]:.4f} | {spread(m)} | "
              f"{statistics.median(tps[m]) / t_tps:.2f} |")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "lth":
        lth(sys.argv[2])
    elif len(sys.argv) == 5 and sys.argv[1] == "structured":
        structured(*sys.argv[2:])
    else:
        fail("usage: prune_table.py lth RUNS | prune_table.py structured RUNS TEACHER KD")


if __name__ == "__main__":
    main()
