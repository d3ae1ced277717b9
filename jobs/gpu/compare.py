#!/usr/bin/env python3
"""Compares a CUDA run of spin with a CPU run of the same command (jobs/gpu/checks.sh).
Standard library only (the GPU machine's Python may lack numpy).

  compare.py score   CPU.jsonl CUDA.jsonl RTOL   spin score outputs: relative L2 error of every
                                                 token log-probability and of the sums
  compare.py generate A.jsonl B.jsonl RTOL     spin generate outputs: the same responses (ids),
                                                 relative L2 error of their log-probabilities
  compare.py metrics CPU.jsonl CUDA.jsonl RTOL   spin train metrics.jsonl, step by step
  compare.py weights CPU_DIR CUDA_DIR RTOL       two Hugging Face directories (float32
                                                 model.safetensors): relative L2 error per tensor
Prints one line per comparison; exits 1 if any error is above RTOL.
"""
import json
import math
import struct
import sys


def rel(a, b):
    num = sum((x - y) ** 2 for x, y in zip(a, b))
    den = sum(y * y for y in b)
    if len(a) != len(b) or any(math.isnan(x) for x in a):
        return math.inf
    return math.sqrt(num) / max(math.sqrt(den), 1e-30)


def lines(path):
    return [json.loads(l) for l in open(path) if l.strip()]


def score(cpu, cuda):
    a, b = lines(cpu), lines(cuda)
    toks_a = [x for r in a for x in r["token_logprobs"]]
    toks_b = [x for r in b for x in r["token_logprobs"]]
    return {"token log-probabilities": rel(toks_b, toks_a) if len(a) == len(b) else math.inf,
            "sequence sums": rel([r["logprob_sum"] for r in b], [r["logprob_sum"] for r in a])}


def generate(cpu, cuda):
    a, b = lines(cpu), lines(cuda)
    same = len(a) == len(b) and all(x["response"] == y["response"] for x, y in zip(a, b))
    return {"responses (0: identical)": 0.0 if same else math.inf,
            "log-probabilities": rel([p for r in b for p in r["logprobs"]], [p for r in a for p in r["logprobs"]])}


def metrics(cpu, cuda):
    a, b = lines(cpu), lines(cuda)
    out = {"records": 0.0 if len(a) == len(b) and a else math.inf}
    for x, y in zip(a, b):
        for key in ("loss", "rewards_actual", "rewards_generated", "generated_length_mean", "grad_norm"):
            if key in x:
                err = abs(y.get(key, math.nan) - x[key]) / max(1.0, abs(x[key]))
                name = "%s %s step %s" % (x.get("kind", ""), key, x.get("step"))
                out[name] = err if not math.isnan(err) else math.inf
    return out


def safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", (name, t["dtype"])
        begin, end = t["data_offsets"]
        out[name] = struct.unpack("<%df" % ((end - begin) // 4), data[begin:end])
    return out


def weights(cpu, cuda):
    a, b = safetensors(cpu + "/model.safetensors"), safetensors(cuda + "/model.safetensors")
    return {name: rel(b.get(name, ()), a[name]) for name in sorted(a)}


def main():
    what, cpu, cuda, rtol = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    errors = {"score": score, "generate": generate, "metrics": metrics, "weights": weights}[what](cpu, cuda)
    worst = max(errors.values())
    for name, err in errors.items():
        print("  %-50s %.2e%s" % (name, err, "" if err <= rtol else "   ABOVE %.0e" % rtol))
    print("compare %s: worst %.2e (tolerance %.0e): %s" % (what, worst, rtol, "ok" if worst <= rtol else "FAILED"))
    sys.exit(0 if worst <= rtol else 1)


if __name__ == "__main__":
    main()
