// Fused causal attention (FlashAttention's algorithm, float32 arithmetic, SIMT) over float32 or
// bf16 q, k, v (mixed precision: widened as the tiles are staged, the output rounded as it is
// written; gradients float32): the scores never reach global memory. The forward keeps, per
// query row and head, the log-sum-exp of its scores (heads x rows floats instead of heads x
// len^2 probabilities); the backward recomputes the probabilities from it. Head sizes 32, 64,
// 96, 128 and 256 (Gemma). For bf16 at head_dim 64 and 128, tensor_core_attention.cu does the
// same on tensor cores.
//
// Work split: one warp per (query row, head) in the forward and the dQ pass, one warp per
// (key row, kv head) in the dK/dV pass; a warp's 32 lanes split head_dim (lane l holds the
// elements l, l + 32, ...: conflict-free shared-memory reads), dot products end in a warp
// reduction. A block's 8 warps take 8 consecutive rows of one head and share tiles of 32 rows
// of the other operand staged in shared memory. Packed variable-length sequences: blockIdx.z
// is the sequence, blockIdx.y the head, blockIdx.x the block of rows within the sequence.
//
// Arithmetic (per query row i, head h, keys j <= i -- and j > i - window under a sliding window,
// whose keys before the block's first row's are not staged at all; scale and cap as kernels::AttentionScores,
// c(x) = cap tanh(x / cap) or x without a cap, c'_j its slope at s_j, 1 - (s_j / cap)^2):
//   forward   s_j = c(scale q.k_j); online softmax m, l; o = sum_j exp(s_j - m) v_j / l;
//             lse = m + log l
//   dQ pass   P_j = exp(s_j - lse), dP_j = dO.v_j; D = sum_j P_j dP_j (= dO.o);
//             dq = scale (sum_j P_j dP_j c'_j k_j - D sum_j P_j c'_j k_j)  (one pass, no O needed)
//   dKV pass  per key j of kv head g, over its group's heads h and rows i >= j:
//             dv_j += P_ij dO_i;  dk_j += scale P_ij (dP_ij - D_ih) c'_ij q_i
//
// The kernels themselves (this header) apart from their launches (fused_attention.cu), so that
// tests/unit/kernels/cuda/fused_attention_test.cpp can run them on the CPU under
// tests/common/cuda_emulation.h.
#pragma once

#include <cmath>

#ifdef __CUDACC__
#include <cuda_bf16.h>
#endif

#include "kernels/cuda/device_helpers.cuh"

// Internal linkage: each file that includes this (the launches' .cu, the emulation test) has its
// own copy.
namespace spin::kernels::cuda_detail::simt {
namespace {

constexpr int kWarps = 8;  // rows per block
// Rows of the other operand per shared-memory tile: 32, or 16 at head_dim 256 (Gemma), so that a
// kernel's two float32 tiles stay within the 48 KiB of static shared memory (32 KiB either way).
template <int HD>
constexpr int kTile = HD > 128 ? 16 : 32;

// An element of q, k, v, the output or a cache: float32, or bf16 (mixed precision) widened
// exactly as read and rounded as written.
__device__ float widen(float x) { return x; }
__device__ float widen(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ void store(float* out, float x) { *out = x; }
__device__ void store(__nv_bfloat16* out, float x) { *out = __float2bfloat16_rn(x); }

// Copies rows [first, first + kTile<HD>) (those < len) of `src` (row stride ld, head offset
// applied) into tile[kTile<HD>][HD], as float32; the block's threads share the work. With `ring`
// (a KV cache's rows a slot: model/kv_cache.h) row i is read from src's row i mod ring, the rows
// read [first, len) being at most `ring` (one division a tile, a subtraction past the wrap).
template <int HD, class T>
__device__ void load_tile(float (*tile)[HD], const T* src, long long ld, long long first, long long len,
                          long long ring = 0) {
  const long long base = ring > 0 ? first % ring : first;
  for (int e = threadIdx.x + threadIdx.y * 32; e < kTile<HD> * HD; e += 32 * kWarps) {
    const int r = e / HD, d = e % HD;
    const long long row = ring > 0 && base + r >= ring ? base + r - ring : base + r;
    tile[r][d] = first + r < len ? widen(src[row * ld + d]) : 0.0f;
  }
}

// One warp's row folds the keys [from, upto) of the staged tiles into its online softmax:
// running max m, sum l, and the unnormalised output acc (its lanes' elements); q pre-scaled.
template <int HD>
__device__ void attend_tile(const float (*ks)[HD], const float (*vs)[HD], long long from, long long upto,
                            const float* qr, float cap, float* acc, float& m, float& l) {
  constexpr int kPer = HD / 32;
  const int lane = threadIdx.x;
  for (long long j = from; j < upto; ++j) {
    float s = 0.0f;
    for (int e = 0; e < kPer; ++e) s += qr[e] * ks[j][lane + 32 * e];
    s = softcap_scores(warp_sum(s), cap);
    const float m_new = fmaxf(m, s);
    const float correction = expf(m - m_new), p = expf(s - m_new);
    l = l * correction + p;
    for (int e = 0; e < kPer; ++e) acc[e] = acc[e] * correction + p * vs[j][lane + 32 * e];
    m = m_new;
  }
}

// One warp's query row under the online softmax: its pre-scaled q and unnormalised output (the
// lanes' elements), running max m and sum l. attend() walks the keys [first_key, last_key] that
// the block needs, each tile staged by the whole block, and folds in this row's keys
// [window_start(position), position]; every warp of the block calls it, active or not (it holds
// the block's barriers). `ring`: key and value rows read modulo it (a KV cache slot's rows), or 0.
template <int HD>
struct SoftmaxRow {
  static constexpr int kPer = HD / 32;
  float q[kPer], acc[kPer];
  float m = -INFINITY, l = 0.0f;
  float cap;
  bool active;

  template <class T>
  __device__ SoftmaxRow(const T* q_row, float scale, float softcap, bool is_active) : cap(softcap), active(is_active) {
    for (int e = 0; e < kPer; ++e) {
      q[e] = active ? widen(q_row[threadIdx.x + 32 * e]) * scale : 0.0f;
      acc[e] = 0.0f;
    }
  }
  template <class T>
  __device__ void attend(float (*ks)[HD], float (*vs)[HD], const T* keys, const T* values, long long ld,
                         long long first_key, long long last_key, long long position, long long window,
                         long long ring = 0) {
    const long long row_first = window_start(position, window);
    for (long long t = first_key; t <= last_key; t += kTile<HD>) {
      __syncthreads();  // the previous tiles are no longer read
      load_tile<HD>(ks, keys, ld, t, last_key + 1, ring);
      load_tile<HD>(vs, values, ld, t, last_key + 1, ring);
      __syncthreads();
      if (active) {
        attend_tile<HD>(ks, vs, max(0LL, row_first - t), min(static_cast<long long>(kTile<HD>), position - t + 1), q,
                        cap, acc, m, l);
      }
    }
  }
  template <class T>
  __device__ void write(T* out_row) const {
    const float inv = 1.0f / l;
    for (int e = 0; e < kPer; ++e) store(out_row + threadIdx.x + 32 * e, acc[e] * inv);
  }
};

// This block's rows of its sequence (blockIdx.z) and this warp's row among them.
struct BlockRows {
  long long start, len;  // the sequence's first packed row and its length
  long long first;       // the block's first row within the sequence
  long long row;         // this warp's: first + warp
  bool active;           // row < len (the last block of a sequence may be partly empty)
  __device__ explicit BlockRows(const long long* cu_seqlens)
      : start(cu_seqlens[blockIdx.z]),
        len(cu_seqlens[blockIdx.z + 1] - start),
        first(static_cast<long long>(blockIdx.x) * kWarps),
        row(first + threadIdx.y),
        active(row < len) {}
  __device__ bool empty() const { return first >= len; }  // the whole block: it returns before any barrier
};

template <int HD, class T>
__global__ void forward_kernel(T* out, float* lse, const T* q, const T* k, const T* v, const long long* cu_seqlens,
                               int heads, int kv_heads, float scale, float softcap, long long window) {
  __shared__ float ks[kTile<HD>][HD];
  __shared__ float vs[kTile<HD>][HD];
  const BlockRows b(cu_seqlens);
  if (b.empty()) return;
  const long long start = b.start, len = b.len, first_row = b.first, i = b.row;
  const int h = blockIdx.y, g = h / (heads / kv_heads);
  const long long q_ld = static_cast<long long>(heads) * HD, kv_ld = static_cast<long long>(kv_heads) * HD;
  SoftmaxRow<HD> r(q + (start + i) * q_ld + h * HD, scale, softcap, b.active);
  const long long last_key = min(len, first_row + kWarps) - 1;  // the block's last row sees it
  r.attend(ks, vs, k + start * kv_ld + g * HD, v + start * kv_ld + g * HD, kv_ld, window_start(first_row, window),
           last_key, i, window);
  if (!r.active) return;
  r.write(out + (start + i) * q_ld + h * HD);
  if (threadIdx.x == 0) lse[(start + i) * heads + h] = r.m + logf(r.l);
}

template <int HD, class T>
__global__ void dq_kernel(float* dq, float* delta, const float* dout, const T* q, const T* k, const T* v,
                          const float* lse, const long long* cu_seqlens, int heads, int kv_heads, float scale,
                          float softcap, long long window) {
  constexpr int kPer = HD / 32;
  __shared__ float ks[kTile<HD>][HD];
  __shared__ float vs[kTile<HD>][HD];
  const BlockRows rows(cu_seqlens);
  if (rows.empty()) return;
  const long long start = rows.start, len = rows.len, first_row = rows.first, i = rows.row;
  const bool active = rows.active;
  const int h = blockIdx.y, g = h / (heads / kv_heads), lane = threadIdx.x;
  const long long q_ld = static_cast<long long>(heads) * HD, kv_ld = static_cast<long long>(kv_heads) * HD;
  float qr[kPer], dor[kPer], a[kPer], b[kPer];
  for (int e = 0; e < kPer; ++e) {
    const long long at = (start + i) * q_ld + h * HD + lane + 32 * e;
    qr[e] = active ? widen(q[at]) * scale : 0.0f;
    dor[e] = active ? dout[at] : 0.0f;
    a[e] = b[e] = 0.0f;
  }
  const float row_lse = active ? lse[(start + i) * heads + h] : 0.0f;
  float d = 0.0f;
  const long long last_key = min(len, first_row + kWarps) - 1, row_first = window_start(i, window);
  for (long long t = window_start(first_row, window); t <= last_key; t += kTile<HD>) {
    __syncthreads();
    load_tile<HD>(ks, k + start * kv_ld + g * HD, kv_ld, t, len);
    load_tile<HD>(vs, v + start * kv_ld + g * HD, kv_ld, t, len);
    __syncthreads();
    if (!active) continue;
    const long long upto = min(static_cast<long long>(kTile<HD>), i - t + 1);
    for (long long j = max(0LL, row_first - t); j < upto; ++j) {
      float s = 0.0f, dp = 0.0f;
      for (int e = 0; e < kPer; ++e) {
        s += qr[e] * ks[j][lane + 32 * e];
        dp += dor[e] * vs[j][lane + 32 * e];
      }
      s = softcap_scores(warp_sum(s), softcap);
      dp = warp_sum(dp);
      const float p = expf(s - row_lse), slope = softcap_grad(s, softcap);
      d += p * dp;
      for (int e = 0; e < kPer; ++e) {
        a[e] += p * dp * slope * ks[j][lane + 32 * e];
        b[e] += p * slope * ks[j][lane + 32 * e];
      }
    }
  }
  if (!active) return;
  for (int e = 0; e < kPer; ++e) dq[(start + i) * q_ld + h * HD + lane + 32 * e] = scale * (a[e] - d * b[e]);
  if (lane == 0) delta[(start + i) * heads + h] = d;
}

template <int HD, class T>
__global__ void dkv_kernel(float* dk, float* dv, const float* dout, const T* q, const T* k, const T* v,
                           const float* lse, const float* delta, const long long* cu_seqlens, int heads, int kv_heads,
                           float scale, float softcap, long long window) {
  constexpr int kPer = HD / 32;
  __shared__ float qs[kTile<HD>][HD];
  __shared__ float dos[kTile<HD>][HD];
  __shared__ float lses[kTile<HD>], deltas[kTile<HD>];
  const BlockRows keys(cu_seqlens);  // here the rows are keys
  if (keys.empty()) return;
  const long long start = keys.start, len = keys.len, first_key = keys.first, j = keys.row;
  const bool active = keys.active;
  const int g = blockIdx.y, group = heads / kv_heads, lane = threadIdx.x;
  const long long q_ld = static_cast<long long>(heads) * HD, kv_ld = static_cast<long long>(kv_heads) * HD;
  float kr[kPer], vr[kPer], dkr[kPer], dvr[kPer];
  for (int e = 0; e < kPer; ++e) {
    const long long at = (start + j) * kv_ld + g * HD + lane + 32 * e;
    kr[e] = active ? widen(k[at]) : 0.0f;
    vr[e] = active ? widen(v[at]) : 0.0f;
    dkr[e] = dvr[e] = 0.0f;
  }
  // Query rows i >= the block's first key (and under a window i < its last key + window); tiles
  // start at a multiple of kTile at or below that first key.
  const long long end = window > 0 ? min(len, min(len, first_key + kWarps) - 1 + window) : len;
  for (int h = g * group; h < (g + 1) * group; ++h) {
    for (long long t = first_key / kTile<HD> * kTile<HD>; t < end; t += kTile<HD>) {
      __syncthreads();
      load_tile<HD>(qs, q + start * q_ld + h * HD, q_ld, t, len);
      load_tile<HD>(dos, dout + start * q_ld + h * HD, q_ld, t, len);
      for (int r = threadIdx.x + threadIdx.y * 32; r < kTile<HD>; r += 32 * kWarps) {
        lses[r] = t + r < len ? lse[(start + t + r) * heads + h] : 0.0f;
        deltas[r] = t + r < len ? delta[(start + t + r) * heads + h] : 0.0f;
      }
      __syncthreads();
      if (!active) continue;
      for (long long r = 0; r < kTile<HD> && t + r < len; ++r) {
        if (t + r < j || (window > 0 && t + r - j >= window)) continue;  // rows that do not see this key
        float s = 0.0f, dp = 0.0f;
        for (int e = 0; e < kPer; ++e) {
          s += qs[r][lane + 32 * e] * kr[e];
          dp += dos[r][lane + 32 * e] * vr[e];
        }
        s = softcap_scores(warp_sum(s) * scale, softcap);
        dp = warp_sum(dp);
        const float p = expf(s - lses[r]);
        const float ds = p * (dp - deltas[r]) * softcap_grad(s, softcap);
        for (int e = 0; e < kPer; ++e) {
          dvr[e] += p * dos[r][lane + 32 * e];
          dkr[e] += scale * ds * qs[r][lane + 32 * e];
        }
      }
    }
  }
  if (!active) return;
  for (int e = 0; e < kPer; ++e) {
    const long long at = (start + j) * kv_ld + g * HD + lane + 32 * e;
    dk[at] = dkr[e];
    dv[at] = dvr[e];
  }
}

// Generation: run z's query rows [row_begin, row_end) sit at positions first, first + 1, ...
// of cache slot `slot` and attend to its positions [window_start(position), position]. Same warp-per-row scheme; the
// tiles come from the slot's cached keys and values, position p at the slot's row p mod capacity (a ring under a
// sliding window; row p where the cache keeps every position).
template <int HD, class T>
__global__ void cached_kernel(T* out, const T* q, const T* k_cache, const T* v_cache,
                              const long long* runs, long long num_runs, long long capacity, int heads, int kv_heads,
                              float scale, float softcap, long long window) {
  __shared__ float ks[kTile<HD>][HD];
  __shared__ float vs[kTile<HD>][HD];
  // runs: [row_begin[0..num_runs]] then slots, then first positions.
  const long long begin = runs[blockIdx.z], end = runs[blockIdx.z + 1];
  const long long slot = runs[num_runs + 1 + blockIdx.z], first_position = runs[2 * num_runs + 1 + blockIdx.z];
  const long long first_row = static_cast<long long>(blockIdx.x) * kWarps;
  if (begin + first_row >= end) return;  // the whole block
  const int h = blockIdx.y, g = h / (heads / kv_heads);
  const long long local = first_row + threadIdx.y, row = begin + local;
  const long long q_ld = static_cast<long long>(heads) * HD, kv_ld = static_cast<long long>(kv_heads) * HD;
  SoftmaxRow<HD> r(q + row * q_ld + h * HD, scale, softcap, row < end);
  const long long last_key = first_position + min(end - begin, first_row + kWarps) - 1;
  r.attend(ks, vs, k_cache + slot * capacity * kv_ld + g * HD, v_cache + slot * capacity * kv_ld + g * HD, kv_ld,
           window_start(first_position + first_row, window), last_key, first_position + local, window, capacity);
  if (r.active) r.write(out + row * q_ld + h * HD);
}

// Decode steps (every run one row) of grouped-query attention: one block per (kv head, run),
// its warps taking the query heads of that kv head's group and sharing the staged tiles -- each
// cached key and value is read once per group instead of once per query head, and no warp of
// the block idles for want of a row (cached_kernel's split gives a decode run one busy warp in
// eight).
template <int HD, class T>
__global__ void decode_kernel(T* out, const T* q, const T* k_cache, const T* v_cache, const long long* runs,
                              long long num_runs, long long capacity, int heads, int kv_heads, float scale,
                              float softcap, long long window) {
  __shared__ float ks[kTile<HD>][HD];
  __shared__ float vs[kTile<HD>][HD];
  const long long row = runs[blockIdx.y];
  if (runs[blockIdx.y + 1] == row) return;  // an empty run: the whole block
  const long long slot = runs[num_runs + 1 + blockIdx.y], position = runs[2 * num_runs + 1 + blockIdx.y];
  const int g = blockIdx.x, group = heads / kv_heads, warp = threadIdx.y;
  const long long q_ld = static_cast<long long>(heads) * HD, kv_ld = static_cast<long long>(kv_heads) * HD;
  for (int first_head = 0; first_head < group; first_head += kWarps) {  // the same count for every warp
    const long long at = row * q_ld + (g * group + first_head + warp) * static_cast<long long>(HD);
    SoftmaxRow<HD> r(q + at, scale, softcap, first_head + warp < group);
    r.attend(ks, vs, k_cache + slot * capacity * kv_ld + g * HD, v_cache + slot * capacity * kv_ld + g * HD, kv_ld,
             window_start(position, window), position, position, window, capacity);
    if (r.active) r.write(out + at);
  }
}

}  // namespace
}  // namespace spin::kernels::cuda_detail::simt
