#!/usr/bin/env python3
"""`spin score` against Hugging Face transformers' LlamaForCausalLM, Qwen2ForCausalLM and
GemmaForCausalLM (float32, CPU) on the tiny models: per-token log-probabilities and masked sums
agree to 2e-5 absolute. This is the independent check that spin computes what the checkpoints
mean (RoPE layout, GQA head grouping, RMSNorm, SwiGLU, tied embeddings, Qwen2's q/k/v biases,
Gemma's GeGLU, 1 + w norms, scaled embeddings and head_dim apart from hidden / heads). Qwen3 is newer than the
transformers this oracle runs on (4.40, beside Debian's torch 1.13): its reference is
LlamaForCausalLM with Qwen3's head norms put on the q and k projections' outputs by forward hooks,
computed as transformers' Qwen3RMSNorm computes them. Needs torch and transformers (a test
oracle only).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, LlamaForCausalLM


def qwen3_as_llama(model_dir, tmp):
    """Qwen3 as LlamaForCausalLM (its weights without the head norms) plus forward hooks that
    normalize each query and key head of the q_proj / k_proj outputs (Qwen3RMSNorm)."""
    config = json.load(open(os.path.join(model_dir, "config.json")))
    head_dim, eps = config["head_dim"], config["rms_norm_eps"]
    weights = load_file(os.path.join(model_dir, "model.safetensors"))
    norms = {k: v for k, v in weights.items() if k.endswith("_norm.weight") and ".self_attn." in k}
    llama_dir = os.path.join(tmp, "as-llama")
    os.makedirs(llama_dir)
    save_file({k: v for k, v in weights.items() if k not in norms}, os.path.join(llama_dir, "model.safetensors"),
              metadata={"format": "pt"})
    config.update({"architectures": ["LlamaForCausalLM"], "model_type": "llama"})
    json.dump(config, open(os.path.join(llama_dir, "config.json"), "w"))
    model = LlamaForCausalLM.from_pretrained(llama_dir, torch_dtype=torch.float32).eval()

    def head_norm(weight):
        def hook(module, inputs, output):
            x = output.reshape(*output.shape[:-1], -1, head_dim).to(torch.float32)
            x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
            return (weight * x).reshape(output.shape)
        return hook

    for i, layer in enumerate(model.model.layers):
        for proj in ("q", "k"):
            weight = norms.pop("model.layers.%d.self_attn.%s_norm.weight" % (i, proj))
            getattr(layer.self_attn, proj + "_proj").register_forward_hook(head_norm(weight))
    assert not norms, norms
    return model


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--spin", required=True)
    p.add_argument("--models", required=True)
    p.add_argument("--input", required=True)
    args = p.parse_args()
    records = [json.loads(l) for l in open(args.input) if l.strip()]
    for name in ["tiny-llama", "tiny-llama-tied", "tiny-qwen2", "tiny-qwen3", "tiny-gemma"]:
        model_dir = os.path.join(args.models, name)
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "out.jsonl")
            r = subprocess.run([args.spin, "score", "--model", model_dir, "--input", args.input,
                                "--output", out], capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                sys.exit("FAIL: spin score: %s%s" % (r.stdout, r.stderr))
            got = [json.loads(l) for l in open(out)]
        if name == "tiny-qwen3":
            model = qwen3_as_llama(model_dir, tempfile.mkdtemp(prefix="spin_qwen3_"))
        else:
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
