#!/usr/bin/env python3
"""jobs/plot_metrics.py: iteration boundaries found where the iteration number changes, the
moving average restarted at each iteration, generation's rate only where a step generated, a valid PNG of the requested size with one panel per
metric, validation points drawn, NaN (skipped) steps left out, and a malformed line reported as
file:line with a non-zero exit. Needs matplotlib (Debian's python3-matplotlib)."""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "jobs", "plot_metrics.py")
sys.path.insert(0, os.path.dirname(SCRIPT))
try:
    import matplotlib  # noqa: F401
except ImportError:
    print("SKIP: %s has no matplotlib (Debian: apt-get install python3-matplotlib)" % sys.executable)
    sys.exit(77)
import plot_metrics  # noqa: E402


def record(kind, iteration, step, loss):
    r = {"kind": kind, "iteration": iteration, "epoch": 1, "step": step, "consumed_samples": 8 * step,
         "loss": loss, "rewards_actual": 0.1 * step, "rewards_generated": -0.1 * step, "margin": 0.2 * step,
         "accuracy": 0.5, "generated_length_mean": 9.0, "generated_length_max": 12.0, "length_capped": 0.0}
    if kind == "train":
        # Generation in odd steps only (the others served by a cache): its rate 0 there.
        r.update(lr=1e-4, grad_norm=1.0, applied=True, tokens_per_second=1000.0 + step,
                 generation_tokens_per_second=500.0 if step % 2 else 0.0)
    else:
        r["sft_nll"] = 1.0
    return r


def main():
    tmp = tempfile.mkdtemp(prefix="spin_plot_")
    try:
        lines = [record("train", 1 + (s - 1) // 4, s, 0.7) for s in range(1, 13)]
        lines[5]["loss"] = float("nan")  # a skipped step
        lines.insert(4, record("validation", 1, 4, 0.6))
        path = os.path.join(tmp, "run", "metrics.jsonl")
        os.makedirs(os.path.dirname(path))
        with open(path, "w") as f:
            for r in lines:
                f.write(json.dumps(r) + "\n")

        train, validation = plot_metrics.load(path)
        assert len(train) == 12 and len(validation) == 1
        assert plot_metrics.iteration_ends(train) == [4, 8], plot_metrics.iteration_ends(train)
        x, y, it = plot_metrics.column(train, "loss")
        assert 6 not in x and len(x) == 11, x  # the NaN step is left out
        x, _, _ = plot_metrics.column(train, "generation_tokens_per_second")
        assert x == [1, 3, 5, 7, 9, 11], x  # steps that generated nothing are left out
        avg = plot_metrics.moving_average([1.0, 3.0, 5.0, 10.0, 20.0], [1, 1, 1, 2, 2], 2)
        assert avg == [1.0, 2.0, 4.0, 10.0, 15.0], avg  # restarted at the iteration change

        png = os.path.join(tmp, "out.png")
        r = subprocess.run([sys.executable, SCRIPT, path, "-o", png, "--smooth", "3"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        data = open(png, "rb").read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
        width, height = struct.unpack(">II", data[16:24])
        assert (width, height) == (1500, 800), (width, height)
        fig = plot_metrics.plot([("run", (train, validation))], os.path.join(tmp, "again.png"), 3, "t")
        axes = fig.get_axes()
        assert [a.get_title() for a in axes] == [p[0] for p in plot_metrics.PANELS]
        for ax in axes:  # the two iteration ends, as vertical lines at 4.5 and 8.5
            verticals = sorted(l.get_xdata()[0] for l in ax.get_lines() if len(set(l.get_xdata())) == 1
                               and len(l.get_xdata()) == 2)
            assert verticals == [4.5, 8.5], (ax.get_title(), verticals)
        labels = axes[0].get_legend_handles_labels()[1]
        assert "loss (validation)" in labels, labels

        bad = os.path.join(tmp, "bad.jsonl")
        open(bad, "w").write(json.dumps(record("train", 1, 1, 0.7)) + "\n{\"kind\": \"train\"\n")
        r = subprocess.run([sys.executable, SCRIPT, bad, "-o", png], capture_output=True, text=True)
        assert r.returncode != 0 and "bad.jsonl:2:" in r.stderr, (r.returncode, r.stderr)
        r = subprocess.run([sys.executable, SCRIPT, os.path.join(tmp, "none.jsonl"), "-o", png],
                           capture_output=True, text=True)
        assert r.returncode != 0 and "none.jsonl" in r.stderr, r.stderr
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("PASS")


if __name__ == "__main__":
    main()
