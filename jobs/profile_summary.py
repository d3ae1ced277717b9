#!/usr/bin/env python3
"""Summarises the traces `spin train` writes under logging.profile_step_start..end (and
`spin sft --profile-step-start/end`), or `spin generate --profile`'s:

  jobs/profile_summary.py SAVE_DIR/profile [--json]      (spin train, spin sft)
  jobs/profile_summary.py OUTPUT.jsonl.profile [--json]  (spin generate)

Training: one row per rank (rank<r>.json), milliseconds per profiled step: the step, its
generation, reference scoring and policy update; inside the policy, the 1F1B schedule -- the
stage's forwards and backwards (compute) and its point-to-point waits (where the pipeline bubble
shows) -- and the optimizer with its gradient reduction; bubble = the share of the 1F1B time not
spent computing. Generation: one row per rank: the run's seconds, its model calls, the mean
sequences a call advances, and the shares of the time in model calls and in sampling (the rest
is waiting for other stages and bookkeeping). Host times: on GPUs, see docs/cluster.md.
--json prints the same figures as one JSON object; --merge FILE also writes every rank's ranges
into one Chrome trace (a process per rank, clocks as the ranks had them), to see the stages of a
pipeline side by side in one ui.perfetto.dev tab.
"""
import argparse
import glob
import json
import os
import re
import sys


def load(path, everything=False):
    """The ranges of one rank's trace (with everything: its metadata events too)."""
    try:
        trace = json.load(open(path))
        return [e for e in trace["traceEvents"] if everything or e.get("ph") == "X"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        sys.exit("profile_summary: %s: not a spin profile (%s)" % (path, e))


def summarise(events):
    """Milliseconds per step of each part, from one rank's ranges."""
    def within(outer, name):
        end = outer["ts"] + outer["dur"]
        return [e for e in events if e["name"] == name and outer["ts"] <= e["ts"] < end]

    steps = [e for e in events if e["name"] == "step"]
    if not steps:
        return None
    total = lambda outer, name: sum(e["dur"] for e in within(outer, name))
    parts = {"step": 0.0, "generation": 0.0, "reference": 0.0, "policy": 0.0, "1F1B": 0.0, "compute": 0.0,
             "p2p": 0.0, "optimizer": 0.0, "reduction": 0.0}
    for s in steps:
        parts["step"] += s["dur"]
        for name in ("generation", "reference", "policy"):
            parts[name] += total(s, name)
        for policy in within(s, "policy"):
            for pipeline in within(policy, "1F1B"):
                parts["1F1B"] += pipeline["dur"]
                parts["compute"] += total(pipeline, "forward") + total(pipeline, "backward")
                parts["p2p"] += total(pipeline, "p2p")
            for optimizer in within(policy, "optimizer"):
                parts["optimizer"] += optimizer["dur"]
                parts["reduction"] += total(optimizer, "gradient reduction")
    figures = {k: v / len(steps) / 1000.0 for k, v in parts.items()}
    figures["steps"] = len(steps)
    figures["bubble"] = 1.0 - figures["compute"] / figures["1F1B"] if figures["1F1B"] > 0 else 0.0
    return figures


def summarise_generation(events):
    """Seconds and shares of one rank's `spin generate --profile` trace."""
    runs = [e for e in events if e["name"] == "generate"]
    if not runs:
        return None
    total = sum(e["dur"] for e in runs)
    calls = [e for e in events if e["name"] == "model call"]
    sequences = sum(e["args"]["sequences"] for e in calls)
    return {"seconds": total / 1e6, "model_calls": len(calls),
            "sequences_per_call": sequences / len(calls) if calls else 0.0,
            "model_share": sum(e["dur"] for e in calls) / total if total else 0.0,
            "sampling_share": sum(e["dur"] for e in events if e["name"] == "sampling") / total if total else 0.0}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="SAVE_DIR/profile")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--merge", metavar="FILE", help="write every rank's ranges into one Chrome trace")
    args = parser.parse_args()
    files = sorted(glob.glob(os.path.join(args.folder, "rank*.json")),
                   key=lambda p: int(re.search(r"rank(\d+)\.json$", p).group(1)))
    if not files:
        sys.exit("profile_summary: %s: no rank<r>.json files" % args.folder)
    rows, generation = {}, {}
    for path in files:
        events = load(path)
        rank = int(re.search(r"rank(\d+)\.json$", path).group(1))
        figures = summarise(events)
        if figures is not None:
            rows[rank] = figures
            continue
        figures = summarise_generation(events)
        if figures is None:
            sys.exit("profile_summary: %s: neither step nor generate ranges" % path)
        generation[rank] = figures
    if rows and generation:
        sys.exit("profile_summary: %s: training and generation traces mixed" % args.folder)
    if args.merge:
        merged = [e for path in files for e in load(path, everything=True)]
        with open(args.merge, "w") as f:
            json.dump({"displayTimeUnit": "ms", "traceEvents": merged}, f)
    if args.json:
        print(json.dumps(rows or generation))
        return
    if generation:
        print("rank  seconds  model calls  sequences/call  in model calls  in sampling")
        for rank, f in sorted(generation.items()):
            print("%4d %8.2f %12d %15.1f %14.0f%% %11.0f%%" % (rank, f["seconds"], f["model_calls"],
                                                             f["sequences_per_call"], 100 * f["model_share"],
                                                             100 * f["sampling_share"]))
        return
    print("ms per step (%d steps)" % rows[min(rows)]["steps"])
    print("rank    step  generation  reference   policy |   1F1B  compute    p2p  bubble | optimizer  reduction")
    for rank, f in sorted(rows.items()):
        print("%4d %7.1f %11.1f %10.1f %8.1f | %6.1f %8.1f %6.1f %6.0f%% | %9.1f %10.1f" %
              (rank, f["step"], f["generation"], f["reference"], f["policy"], f["1F1B"], f["compute"], f["p2p"],
               100 * f["bubble"], f["optimizer"], f["reduction"]))


if __name__ == "__main__":
    main()
