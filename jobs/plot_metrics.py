#!/usr/bin/env python3
"""Plots a `spin train` run from its metrics.jsonl (Debian's python3-matplotlib; a `spin sft --metrics`
file too: its loss and throughput panels):

  jobs/plot_metrics.py OUT/metrics.jsonl -o run.png [--smooth 5] [--title "..."]

Six panels against the optimizer step: the SPIN loss, the rewards of the ground-truth and the
generated responses, their margin, the accuracy (fraction of prompts with real reward > generated
reward), the generated length (mean and max), and the throughput (training tokens/s, and the
reference's generated tokens/s in the steps that generated). Training values are
lines (a moving average over --smooth steps drawn over the raw values, faint), validation values
are markers; dotted vertical lines mark where each self-play iteration ends. Several files may be
given to compare runs (one colour each, named by their directory).
"""
import argparse
import json
import math
import os
import sys


def load(path):
    """The train and validation records of one metrics.jsonl; a malformed line is one error naming it."""
    train, validation = [], []
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        sys.exit("plot_metrics: %s: %s" % (path, e.strerror))
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            kind, step = record["kind"], int(record["step"])
        except (ValueError, KeyError, TypeError) as e:
            sys.exit("plot_metrics: %s:%d: not a spin metrics record (%s)" % (path, number, e))
        record["step"] = step
        (train if kind == "train" else validation).append(record)
    if not train and not validation:
        sys.exit("plot_metrics: %s: no metrics records" % path)
    return train, validation


# Figures a step has only when it did the work: generation's rate is 0 in a step that took its
# responses from the iteration's cache (spin.reuse_generations), which says nothing of the rate.
WHEN_DONE = {"generation_tokens_per_second"}


def column(records, key):
    """Steps, values and iterations of the records with a finite `key` (skipped steps' NaN dropped;
    for the WHEN_DONE figures, the steps that did not do that work)."""
    rows = [(r["step"], r[key], r.get("iteration", 1)) for r in records
            if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])
            and not (key in WHEN_DONE and r[key] <= 0)]
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def moving_average(values, iterations, window):
    """Trailing mean over `window` values, restarted at each iteration (the reference changes there,
    so rewards and margins start again from zero)."""
    out, start = [], 0
    for i in range(len(values)):
        if i > 0 and iterations[i] != iterations[i - 1]:
            start = i
        lo = max(start, i - window + 1)
        out.append(sum(values[lo:i + 1]) / (i + 1 - lo))
    return out


def iteration_ends(train):
    """Steps after which an iteration ended (the last step of each iteration but the final one)."""
    ends = []
    for a, b in zip(train, train[1:]):
        if b.get("iteration", 1) != a.get("iteration", 1):  # spin sft's records have none
            ends.append(a["step"])
    return ends


PANELS = [  # (title, [(key, label, style)], y label)
    ("loss", [("loss", "loss", "-")], "SPIN: l(lambda margin); SFT: NLL a response token"),
    ("rewards", [("rewards_actual", "ground truth", "-"), ("rewards_generated", "generated", "--")],
     "lambda * sum(log pi - log pi_ref)"),
    ("reward margin", [("margin", "margin", "-")], "real - generated"),
    ("accuracy", [("accuracy", "accuracy", "-")], "fraction real > generated"),
    ("generated length", [("generated_length_mean", "mean", "-"), ("generated_length_max", "max", ":")], "tokens"),
    ("throughput", [("tokens_per_second", "training tokens/s", "-"),
                    ("generation_tokens_per_second", "generated tokens/s", "--")], "tokens/s"),
]


def plot(runs, output, smooth, title, dpi=100):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 8), constrained_layout=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (name, (train, validation)), colour in zip(runs, colours * 8):
        for ax, (panel, series, ylabel) in zip(axes.flat, PANELS):
            for shade, (key, label, style) in enumerate(series):
                tag = "%s%s" % (name + ": " if len(runs) > 1 else "", label)
                x, y, iterations = column(train, key)
                if x:
                    if smooth > 1:
                        ax.plot(x, y, style, color=colour, alpha=0.2, linewidth=0.8)
                    ax.plot(x, moving_average(y, iterations, smooth), style, color=colour, alpha=1.0 - 0.35 * shade,
                            label=tag + " (train)" if validation and key in validation[0] else tag)
                vx, vy, _ = column(validation, key)
                if vx:
                    ax.plot(vx, vy, "o" if shade == 0 else "s", color=colour, markersize=5,
                            markerfacecolor="none" if shade else colour, label=tag + " (validation)")
            ax.set_title(panel)
            ax.set_xlabel("step")
            ax.set_ylabel(ylabel)
        for ax in axes.flat:
            for end in iteration_ends(train):
                ax.axvline(end + 0.5, color=colour, linestyle=":", linewidth=0.9, alpha=0.6)
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(title + "   (dotted lines: ends of self-play iterations)")
    fig.savefig(output, dpi=dpi)
    return fig


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("metrics", nargs="+", help="metrics.jsonl of a spin train run (several to compare)")
    p.add_argument("-o", "--output", required=True, help="image to write (.png, .svg, .pdf)")
    p.add_argument("--smooth", type=int, default=1, help="moving-average window over training steps")
    p.add_argument("--title", default=None)
    p.add_argument("--dpi", type=int, default=100, help="resolution (the figure is 15 x 8 inches)")
    args = p.parse_args()
    runs = []
    for path in args.metrics:
        name = os.path.basename(os.path.dirname(os.path.abspath(path))) or path
        runs.append((name, load(path)))
    title = args.title or ", ".join(name for name, _ in runs)
    plot(runs, args.output, max(args.smooth, 1), title, args.dpi)
    steps = sum(len(t) for _, (t, _) in runs)
    print("plot_metrics: %d training steps from %d file(s) -> %s" % (steps, len(runs), args.output))


if __name__ == "__main__":
    main()
