#!/usr/bin/python3
"""Plot kdtrain training curves from one or more run directories.

Usage:
    /usr/bin/python3 scripts/plot.py RUN_DIR [RUN_DIR ...] [--out OUT.png]
                                     [--labels a,b,...] [--sparsity]

Each RUN_DIR holds metrics.jsonl, one JSON object per line:
  {"type": "train", "step", "tokens", "time_s", "loss", "ce", "kd", "feat",
   "lr", "grad_norm", "tokens_per_s"}
  {"type": "eval", "step", "tokens", "time_s", "val_loss", "val_ppl",
   "val_bpb", optional "agreement", optional "val_kl"}
Unknown keys and unknown line types are ignored; a missing key only drops
that point (or the whole curve if no line has it).

Writes one PNG (default RUN_DIR/curves.png for the first run) with a 2x2 grid:
  (a) training CE (solid) and total loss (dashed) vs step
  (b) validation bits per byte vs step
  (c) validation perplexity vs wall-clock seconds
  (d) top-1 agreement with the teacher vs step, or the learning rate if no
      run logged agreement
and prints the output path. With --sparsity instead one panel: validation
perplexity vs the eval lines' "sparsity" (pruning runs; IMP writes one line per
round), runs named NAME-sSEED sharing a colour per NAME (default
RUN_DIR/sparsity.png).  Exit status 2 on bad input (missing
metrics.jsonl, a line that is not a JSON object: reported as file:line).

Needs matplotlib (Debian: python3-matplotlib); uses the Agg backend only.
"""

import argparse
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

PROG = "plot.py"


class InputError(Exception):
    pass


def _num(value):
    """A finite or non-finite float for numeric JSON values, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def load_run(run_dir):
    """Returns (train_rows, eval_rows), lists of dicts, in file order."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        raise InputError(f"{run_dir}: no metrics.jsonl (looked for {path})")
    train, evals = [], []
    try:
        fh = open(path, "rb")
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror}")
    with fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(f"{path}:{lineno}: not UTF-8 text: {e}")
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{lineno}: not valid JSON: {e}")
            if not isinstance(obj, dict):
                raise InputError(f"{path}:{lineno}: not a JSON object")
            kind = obj.get("type")
            if kind == "train":
                train.append(obj)
            elif kind == "eval":
                evals.append(obj)
            # Other line types (config, notes, ...) are ignored.
    if not train and not evals:
        print(f"{PROG}: warning: {path}: no train or eval lines",
              file=sys.stderr)
    return train, evals


def series(rows, xkey, ykey):
    """(xs, ys) for rows that have numeric values for both keys."""
    xs, ys = [], []
    for r in rows:
        x, y = _num(r.get(xkey)), _num(r.get(ykey))
        if x is None or y is None:
            continue
        xs.append(x)
        ys.append(y)
    return xs, ys


def default_labels(run_dirs):
    labels = [os.path.basename(os.path.normpath(d)) or d for d in run_dirs]
    if len(set(labels)) != len(labels):
        labels = [os.path.normpath(d) for d in run_dirs]
    return labels


def finish_axis(ax, title, xlabel, ylabel, has_data, legend_handles=None):
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if not has_data:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center",
                va="center", color="gray", fontsize=12)
        return
    handles, labels = ax.get_legend_handles_labels()
    if legend_handles:
        handles += legend_handles
        labels += [h.get_label() for h in legend_handles]
    if handles:
        ax.legend(handles, labels, fontsize=8, loc="best", framealpha=0.8)


def maybe_log_y(ax, values):
    finite = [v for v in values if math.isfinite(v) and v > 0]
    if finite and max(finite) / min(finite) > 20:
        ax.set_yscale("log")


def plot(runs, out_path):
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    ax_ce, ax_bpb, ax_ppl, ax_d = axes[0, 0], axes[0, 1], axes[1, 0], axes[1, 1]

    any_agreement = any(series(ev, "step", "agreement")[0] for _, _, ev in runs)

    has = {"ce": False, "loss": False, "bpb": False, "ppl": False, "d": False}
    ppl_values, d_values = [], []
    for i, (label, train, evals) in enumerate(runs):
        color = colors[i % len(colors)]

        # (a) training CE (solid) and total loss (dashed).
        xs, ys = series(train, "step", "ce")
        if xs:
            ax_ce.plot(xs, ys, color=color, lw=1.3, label=label)
            has["ce"] = True
        xl, yl = series(train, "step", "loss")
        if xl:
            ax_ce.plot(xl, yl, color=color, lw=1.0, ls="--", alpha=0.8,
                       label=None if xs else label)
            has["loss"] = True

        # (b) validation bits per byte vs step.
        xs, ys = series(evals, "step", "val_bpb")
        if xs:
            ax_bpb.plot(xs, ys, color=color, marker="o", ms=4, lw=1.3,
                        label=label)
            has["bpb"] = True

        # (c) validation perplexity vs wall-clock seconds.
        xs, ys = series(evals, "time_s", "val_ppl")
        if xs:
            ax_ppl.plot(xs, ys, color=color, marker="o", ms=4, lw=1.3,
                        label=label)
            ppl_values += ys
            has["ppl"] = True

        # (d) teacher agreement, else learning rate.
        if any_agreement:
            xs, ys = series(evals, "step", "agreement")
            if xs:
                ax_d.plot(xs, ys, color=color, marker="o", ms=4, lw=1.3,
                          label=label)
        else:
            xs, ys = series(train, "step", "lr")
            if xs:
                ax_d.plot(xs, ys, color=color, lw=1.3, label=label)
        if xs:
            d_values += ys
            has["d"] = True

    style_handles = []
    if has["ce"] and has["loss"]:
        style_handles = [
            Line2D([], [], color="black", lw=1.3, label="CE (solid)"),
            Line2D([], [], color="black", lw=1.0, ls="--",
                   label="total loss (dashed)"),
        ]
    if has["ce"]:
        title_a = "(a) Training cross-entropy"
        ylabel_a = "CE loss (nats/token)" if not has["loss"] else "loss (nats/token)"
    else:
        title_a = "(a) Training loss (total, dashed; no CE logged)"
        ylabel_a = "loss"
    finish_axis(ax_ce, title_a, "step", ylabel_a,
                has["ce"] or has["loss"], style_handles)

    finish_axis(ax_bpb, "(b) Validation bits per byte", "step",
                "bits per byte", has["bpb"])

    maybe_log_y(ax_ppl, ppl_values)
    finish_axis(ax_ppl, "(c) Validation perplexity vs wall-clock time",
                "wall-clock time (s)", "perplexity", has["ppl"])

    if any_agreement:
        finish_axis(ax_d, "(d) Top-1 agreement with teacher", "step",
                    "agreement (fraction of tokens)", has["d"])
        finite = [v for v in d_values if math.isfinite(v)]
        if finite and min(finite) >= 0 and max(finite) <= 1:
            ax_d.set_ylim(max(0.0, min(finite) - 0.05),
                          min(1.0, max(finite) + 0.05))
    else:
        finish_axis(ax_d, "(d) Learning rate (no teacher agreement logged)",
                    "step", "learning rate", has["d"])
        ax_d.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))

    fig.suptitle("kdtrain: " + ", ".join(label for label, _, _ in runs),
                 fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    out_dir = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(out_dir, exist_ok=True)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)


def plot_sparsity(runs, out_path):
    """Validation perplexity vs sparsity from the eval lines that carry a sparsity (IMP
    writes one per round). Runs named FAMILY-sSEED (and lth-oneshotX-sSEED, one family)
    are pooled: the line is the mean over the runs at each sparsity, each run's points are
    drawn faintly behind it."""
    fig, ax = plt.subplots(figsize=(8, 5.5))
    families = {}  # family -> sparsity -> [ppl]
    for label, _train, evals in runs:
        xs, ys = series(evals, "sparsity", "val_ppl")
        family = label.rsplit("-s", 1)[0]
        if family.startswith("lth-oneshot"):
            family = "lth-oneshot"
        for x, y in zip(xs, ys):
            families.setdefault(family, {}).setdefault(round(100 * x, 1), []).append(y)
    if not families:
        raise InputError("no eval line with a sparsity (runs with a prune section write one)")
    values = []
    for k, (family, points) in enumerate(families.items()):
        colour = f"C{k % 10}"
        xs = sorted(points)
        means = [sum(points[x]) / len(points[x]) for x in xs]
        ax.plot(xs, means, color=colour, marker="o", ms=4, lw=1.4, label=family)
        for x in xs:
            ax.plot([x] * len(points[x]), points[x], color=colour, marker=".", ls="", alpha=0.35)
            values += points[x]
    maybe_log_y(ax, values)
    ax.set_xlabel("sparsity of the linear layers (%)")
    ax.set_ylabel("validation perplexity")
    ax.set_title("Validation perplexity vs sparsity (lines: mean over runs; dots: each run)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="Plot kdtrain metrics.jsonl curves (2x2 PNG).")
    ap.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                    help="run directory containing metrics.jsonl")
    ap.add_argument("--out", help="output PNG (default: FIRST_RUN_DIR/curves.png)")
    ap.add_argument("--sparsity", action="store_true",
                    help="one panel: validation perplexity vs sparsity (pruning runs; IMP gives one point per round)")
    ap.add_argument("--labels",
                    help="comma-separated legend labels, one per RUN_DIR "
                         "(default: run directory basenames)")
    args = ap.parse_args(argv)

    if args.labels is not None:
        labels = [s.strip() for s in args.labels.split(",")]
        if len(labels) != len(args.run_dirs):
            print(f"{PROG}: error: --labels has {len(labels)} entries for "
                  f"{len(args.run_dirs)} run dirs", file=sys.stderr)
            return 2
    else:
        labels = default_labels(args.run_dirs)

    runs = []
    try:
        for label, d in zip(labels, args.run_dirs):
            train, evals = load_run(d)
            runs.append((label, train, evals))
    except InputError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2

    out = args.out or os.path.join(args.run_dirs[0], "sparsity.png" if args.sparsity else "curves.png")
    if args.sparsity:
        try:
            plot_sparsity(runs, out)
        except InputError as e:
            print(f"{PROG}: error: {e}", file=sys.stderr)
            return 2
    else:
        plot(runs, out)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
