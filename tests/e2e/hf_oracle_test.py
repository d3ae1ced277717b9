#!/usr/bin/env python3
"""`spin score` against Hugging Face transformers' LlamaForCausalLM and Qwen2ForCausalLM (float32,
CPU) on the tiny models: per-token log-probabilities and masked sums agree to 2e-5 absolute. This
is the independent check that spin computes what the checkpoints mean (RoPE layout, GQA head
grouping, RMSNorm, SwiGLU, tied embeddings, Qwen2's q/k/v biases). Needs torch and transformers
(a test oracle only).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
from transformers import AutoModelForCausalLM


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--spin", required=True)
    p.add_argument("--models", required=True)
    p.add_argument("--input", required=True)
    args = p.parse_args()
    records = [json.loads(l) for l in open(args.input) if l.strip()]
    for name in ["tiny-llama", "tiny-llama-tied", "tiny-qwen2"]:
        model_dir = os.path.join(args.models, name)
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "out.jsonl")
            r = subprocess.run([args.spin, "score", "--model", model_dir, "--input", args.input,
                                "--output", out], capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                sys.exit("FAIL: spin score: %s%s" % (r.stdout, r.stderr))
            got = [json.loads(l) for l in open(out)]
        model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
        print("%s: %s" % (name, type(model).__name__))
        worst = 0.0
        for i, (rec, g) in enumerate(zip(records, got)):
            if "tokens" in rec:
                tokens, k = rec["tokens"], rec.get("mask_from", 1)
            else:
                tokens, k = rec["prompt"] + rec["response"], len(rec["prompt"])
            ids = torch.tensor([tokens])
            with torch.no_grad():
                logp = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
            want = logp[torch.arange(len(tokens) - 1), ids[0, 1:]].tolist()
            want_sum = sum(want[k - 1:])
            for a, b in zip(g["token_logprobs"] + [g["logprob_sum"]], want + [want_sum]):
                worst = max(worst, abs(a - b))
                if abs(a - b) > 2e-5 + 1e-5 * abs(b):
                    sys.exit("FAIL: %s line %d: spin %r, transformers %r" % (name, i + 1, a, b))
        print("%s: %d sequences agree with transformers (max |diff| %.3g)" % (name, len(records), worst))
    print("PASS")


if __name__ == "__main__":
    main()
