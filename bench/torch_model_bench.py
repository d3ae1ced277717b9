#!/usr/bin/env python3
"""The model_bench step in PyTorch (Debian's python3-torch), for comparison: the same Llama
architecture and sizes, forward + backward of the summed log-probabilities of every next token,
float32 on the CPU. Prints tokens/s and model GFLOP/s with the same FLOP count as model_bench.

    /usr/bin/python3 bench/torch_model_bench.py --threads 2
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F


class Llama(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        self.a = a
        hd = a.hidden // a.heads
        lin = lambda i, o: torch.nn.Linear(i, o, bias=False)
        self.embed = torch.nn.Embedding(a.vocab, a.hidden)
        self.layers = torch.nn.ModuleList()
        for _ in range(a.layers):
            self.layers.append(torch.nn.ModuleDict(dict(
                q=lin(a.hidden, a.heads * hd), k=lin(a.hidden, a.kv_heads * hd),
                v=lin(a.hidden, a.kv_heads * hd), o=lin(a.heads * hd, a.hidden),
                gate=lin(a.hidden, a.intermediate), up=lin(a.hidden, a.intermediate),
                down=lin(a.intermediate, a.hidden))))
            self.layers[-1].n1 = torch.nn.Parameter(torch.ones(a.hidden))
            self.layers[-1].n2 = torch.nn.Parameter(torch.ones(a.hidden))
        self.norm = torch.nn.Parameter(torch.ones(a.hidden))
        self.head = lin(a.hidden, a.vocab)
        inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2).float() / hd))
        ang = torch.outer(torch.arange(a.seq).float(), inv)
        self.cos = torch.cat([ang.cos(), ang.cos()], -1)
        self.sin = torch.cat([ang.sin(), ang.sin()], -1)
        for p in self.parameters():
            if p.dim() == 2:
                torch.nn.init.normal_(p, std=0.02)

    @staticmethod
    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w

    def rope(self, x):
        half = x.shape[-1] // 2
        rot = torch.cat([-x[..., half:], x[..., :half]], -1)
        return x * self.cos[:, None, :] + rot * self.sin[:, None, :]

    def forward(self, ids):
        a = self.a
        b, t = ids.shape
        hd = a.hidden // a.heads
        x = self.embed(ids)
        mask = torch.full((t, t), float("-inf")).triu(1)
        for l in self.layers:
            h = self.rms(x, l.n1)
            q = self.rope(l.q(h).view(b, t, a.heads, hd)).transpose(1, 2)
            k = self.rope(l.k(h).view(b, t, a.kv_heads, hd)).transpose(1, 2)
            v = l.v(h).view(b, t, a.kv_heads, hd).transpose(1, 2)
            if a.kv_heads != a.heads:
                k = k.repeat_interleave(a.heads // a.kv_heads, 1)
                v = v.repeat_interleave(a.heads // a.kv_heads, 1)
            s = q @ k.transpose(-1, -2) / hd ** 0.5 + mask
            o = (s.softmax(-1) @ v).transpose(1, 2).reshape(b, t, a.hidden)
            x = x + l.o(o)
            h = self.rms(x, l.n2)
            x = x + l.down(F.silu(l.gate(h)) * l.up(h))
        logp = self.head(self.rms(x, self.norm)).log_softmax(-1)
        return logp[:, :-1].gather(-1, ids[:, 1:, None]).sum()


def main():
    p = argparse.ArgumentParser()
    for name, default in [("hidden", 512), ("layers", 8), ("heads", 8), ("kv-heads", 8),
                          ("intermediate", 1024), ("vocab", 4096), ("seq", 256), ("batch", 4),
                          ("steps", 9), ("warmup", 1), ("threads", 2)]:
        p.add_argument("--" + name, type=int, default=default)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Llama(a)
    ids = torch.randint(0, a.vocab, (a.batch, a.seq))
    times = []
    for step in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        model.zero_grad(set_to_none=False)
        (-model(ids) / a.batch).backward()
        if step >= a.warmup:
            times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)  # as model_bench: the median step
    hd = a.hidden // a.heads
    n_matmul = a.layers * (a.hidden * hd * (2 * a.heads + 2 * a.kv_heads) + 3 * a.hidden * a.intermediate) + a.vocab * a.hidden
    flop_per_token = 6 * n_matmul + 12 * a.layers * a.hidden * a.seq
    tokens = a.batch * a.seq
    print("pytorch %s, %d threads: median step %.1f ms, %.0f tokens/s, %.1f GFLOP/s"
          % (torch.__version__, a.threads, step_s * 1e3, tokens / step_s, flop_per_token * tokens / step_s / 1e9))


if __name__ == "__main__":
    main()
