#!/usr/bin/env python3
# A numpy mirror of src/kernels/cuda/tensor_core_attention.cu's loops -- its blocks of 64 rows,
# warps of 16, 64-row tiles, causal and length masks, the bf16 roundings of P, dO and dS, D
# from the bf16 output -- against float64 PyTorch autograd. It checks the algorithm (tile
# bounds, masks, formulas), not CUDA semantics (fragment layouts, barriers): written before any
# GPU could run the kernels, run by hand (python3 with numpy and torch, a few minutes):
#   python3 tests/gpu/tensor_core_attention_mirror.py
# Expected: relative L2 errors of a few 1e-3 (bf16 rounding) and no unwritten (NaN) element.
import numpy as np
def bf(x):  # round to bf16 (nearest even)
    x = np.asarray(x, np.float32); shape = x.shape; b = np.atleast_1d(x).view(np.uint32).astype(np.uint64)
    b = ((b + np.uint64(0x7FFF) + ((b >> np.uint64(16)) & np.uint64(1))) >> np.uint64(16)) << np.uint64(16)
    return b.astype(np.uint32).view(np.float32).reshape(shape)
kBlock = kTile = 64; kRows = 16
def forward(q, k, v, cu, heads, kvh, hd):
    rows = cu[-1]; out = np.zeros((rows, heads, hd), np.float32); lse = np.zeros((rows, heads), np.float32)
    scale = np.float32(1 / np.sqrt(hd)); group = heads // kvh
    for z in range(len(cu) - 1):
        start, ln = cu[z], cu[z + 1] - cu[z]
        for bx in range((max(np.diff(cu)) + kBlock - 1) // kBlock):
            first = bx * kBlock
            if first >= ln: continue
            for h in range(heads):
                g = h // group
                Q = np.zeros((kBlock, hd), np.float32); n = min(kBlock, ln - first); Q[:n] = q[start + first:start + first + n, h]
                for warp in range(4):
                    wf = first + warp * kRows
                    o = np.zeros((kRows, hd), np.float32); m = np.full(kRows, -np.inf, np.float32); l = np.zeros(kRows, np.float32)
                    last_key = min(ln, first + kBlock) - 1
                    for j0 in range(0, last_key + 1, kTile):
                        K = np.zeros((kTile, hd), np.float32); V = np.zeros((kTile, hd), np.float32)
                        nk = max(0, min(kTile, ln - j0)); K[:nk] = k[start + j0:start + j0 + nk, g]; V[:nk] = v[start + j0:start + j0 + nk, g]
                        if not (wf < ln) or j0 > wf + kRows - 1: continue
                        s = Q[warp * kRows:(warp + 1) * kRows] @ K.T
                        for r in range(kRows):
                            row = wf + r
                            x = np.where([(j0 + c <= row and j0 + c < ln) for c in range(kTile)], s[r] * scale, -np.inf).astype(np.float32)
                            mn = max(m[r], x.max()); shift = 0.0 if mn == -np.inf else mn
                            corr = np.exp(m[r] - shift); e = np.exp(x - shift)
                            l[r] = l[r] * corr + e.sum(); m[r] = mn; o[r] *= corr
                            o[r] += bf(e) @ V
                    for r in range(kRows):
                        row = wf + r
                        if wf < ln and row < ln:
                            out[start + row, h] = bf(o[r] / l[r]); lse[start + row, h] = m[r] + np.log(l[r])
    return out, lse
def backward(q, k, v, out, dout, lse, cu, heads, kvh, hd):
    rows = cu[-1]; scale = np.float32(1 / np.sqrt(hd)); group = heads // kvh
    delta = (dout * out).sum(-1)
    dq = np.full((rows, heads, hd), np.nan, np.float32); dk = np.full((rows, kvh, hd), np.nan, np.float32); dv = dk.copy()
    dob = bf(dout)
    for z in range(len(cu) - 1):
        start, ln = cu[z], cu[z + 1] - cu[z]
        for bx in range((max(np.diff(cu)) + kBlock - 1) // kBlock):
            first = bx * kBlock
            if first >= ln: continue
            for h in range(heads):  # dq pass
                g = h // group
                for warp in range(4):
                    wf = first + warp * kRows
                    if wf >= ln: continue
                    acc = np.zeros((kRows, hd), np.float32)
                    for j0 in range(0, min(ln, first + kBlock), kTile):
                        if j0 > wf + kRows - 1: continue
                        for r in range(kRows):
                            row = wf + r
                            if row >= ln: continue
                            for c in range(kTile):
                                key = j0 + c
                                if key <= row and key < ln:
                                    p = np.exp(q[start + row, h] @ k[start + key, g] * scale - lse[start + row, h])
                                    dp = dob[start + row, h] @ v[start + key, g]
                                    acc[r] += bf(p * (dp - delta[start + row, h])) * k[start + key, g]
                    nv = min(kRows, ln - wf); dq[start + wf:start + wf + nv, h] = scale * acc[:nv]
            for g in range(kvh):  # dkv pass
                for warp in range(4):
                    wf = first + warp * kRows
                    if wf >= ln: continue
                    dka = np.zeros((kRows, hd), np.float32); dva = np.zeros((kRows, hd), np.float32)
                    for h in range(g * group, (g + 1) * group):
                        for i0 in range(first, ln, kTile):
                            if i0 + kTile - 1 < wf: continue
                            for r in range(kRows):
                                key = wf + r
                                for c in range(kTile):
                                    query = i0 + c
                                    if query >= key and query < ln and key < ln:
                                        p = np.exp(k[start + key, g] @ q[start + query, h] * scale - lse[start + query, h])
                                        dp = v[start + key, g] @ dob[start + query, h]
                                        dva[r] += bf(p) * dob[start + query, h]
                                        dka[r] += bf(p * (dp - delta[start + query, h])) * q[start + query, h]
                    nv = min(kRows, ln - wf)
                    dk[start + wf:start + wf + nv, g] = scale * dka[:nv]; dv[start + wf:start + wf + nv, g] = dva[:nv]
    return dq, dk, dv
def reference(q, k, v, dout, cu, heads, kvh, hd):
    import torch
    out = np.zeros_like(q); dq = np.zeros_like(q); dk = np.zeros_like(k); dv = np.zeros_like(v)
    for z in range(len(cu) - 1):
        s, e = cu[z], cu[z + 1]
        Q = torch.tensor(q[s:e], dtype=torch.float64, requires_grad=True); K = torch.tensor(k[s:e], dtype=torch.float64, requires_grad=True); V = torch.tensor(v[s:e], dtype=torch.float64, requires_grad=True)
        Kr = K.repeat_interleave(heads // kvh, 1); Vr = V.repeat_interleave(heads // kvh, 1)
        S = torch.einsum('ihd,jhd->hij', Q, Kr) / np.sqrt(hd)
        S = S.masked_fill(torch.triu(torch.ones(e - s, e - s, dtype=torch.bool), 1), -np.inf)
        O = torch.einsum('hij,jhd->ihd', S.softmax(-1), Vr)
        O.backward(torch.tensor(dout[s:e], dtype=torch.float64))
        out[s:e] = O.detach().numpy(); dq[s:e] = Q.grad.numpy(); dk[s:e] = K.grad.numpy(); dv[s:e] = V.grad.numpy()
    return out, dq, dk, dv
rng = np.random.default_rng(0)
cu = np.array([0, 1, 18, 148, 300]); heads, kvh, hd = 4, 2, 64
q = bf(rng.uniform(-1, 1, (300, heads, hd))); k = bf(rng.uniform(-1, 1, (300, kvh, hd))); v = bf(rng.uniform(-1, 1, (300, kvh, hd)))
dout = rng.uniform(-1, 1, (300, heads, hd)).astype(np.float32)
rel = lambda a, b: np.linalg.norm(a - b) / np.linalg.norm(b)
out, lse = forward(q, k, v, cu, heads, kvh, hd)
ro, rdq, rdk, rdv = reference(q, k, v, dout, cu, heads, kvh, hd)
print("out", rel(out, ro))
assert rel(out, ro) < 1e-2
dq, dk, dv = backward(q, k, v, out, dout, lse, cu, heads, kvh, hd)
print("nan", np.isnan(dq).sum(), np.isnan(dk).sum(), np.isnan(dv).sum())
print("dq", rel(dq, rdq), "dk", rel(dk, rdk), "dv", rel(dv, rdv))
assert not any(np.isnan(x).any() for x in (dq, dk, dv))
assert max(rel(dq, rdq), rel(dk, rdk), rel(dv, rdv)) < 1e-2
