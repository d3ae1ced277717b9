# YaRN's inverse frequencies and attention factor as transformers' _compute_yarn_parameters
# (modeling_rope_utils) computes them -- float32 tensors, Python doubles for the scalars --, written
# out for spin's known-answer test (tests/unit/model/rope_test.cpp, config_test.cpp).
# Usage: python3 tests/data/yarn_oracle.py   (needs torch)
import math

import torch


def yarn(head_dim, base, factor, original, beta_fast=32, beta_slow=1, truncate=True,
         mscale=None, mscale_all_dim=None, attention_factor=None):
    dim = head_dim
    def get_mscale(scale, m=1):
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0
    if attention_factor is None:
        if mscale and mscale_all_dim:
            attention_factor = float(get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim))
        else:
            attention_factor = get_mscale(factor)
    def corr_dim(rot):
        return (dim * math.log(original / (rot * 2 * math.pi))) / (2 * math.log(base))
    low, high = corr_dim(beta_fast), corr_dim(beta_slow)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
    pos = base ** (torch.arange(0, dim, 2).float() / dim)
    extra = 1.0 / pos
    inter = 1.0 / (factor * pos)
    ef = 1 - ramp
    inv = inter * (1 - ef) + extra * ef
    return inv, attention_factor, (low, high)

def main():
    cases = [dict(head_dim=16, base=10000.0, factor=4.0, original=64),
             dict(head_dim=16, base=10000.0, factor=4.0, original=64, truncate=False, beta_fast=16, beta_slow=2),
             dict(head_dim=16, base=10000.0, factor=40.0, original=64, mscale=1.0, mscale_all_dim=0.5),
             dict(head_dim=128, base=1000000.0, factor=4.0, original=32768)]
    for args in cases:
        inv, attention, ramp = yarn(**args)
        print(args, "ramp", ramp, "attention factor", attention.hex(), attention)
        print(", ".join(float(x).hex() for x in inv.tolist()))


if __name__ == "__main__":
    main()
