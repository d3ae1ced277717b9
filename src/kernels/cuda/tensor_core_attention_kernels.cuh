// Fused causal attention on tensor cores, for mixed precision (bf16 q, k, v): FlashAttention-2's
// algorithm (Dao 2023) with every product on WMMA 16x16x16 bf16 tiles accumulating in float32,
// and the softmax, its statistics and the gradients' scaling in float32.
//
// Work split: a block of 4 warps takes 64 rows (queries, or keys in the dK/dV pass) of one head
// of one sequence; each warp owns 16 of them -- one WMMA row tile. The other operand comes in
// 64-row tiles (32 at head_dim 256: kTile) staged in shared memory by the whole block; a warp's
// 16 x 64 scores go through
// shared memory between the products and the softmax (WMMA's register layout is opaque), and the
// forward's running output lives in shared memory, rescaled there when the running max grows.
//
// Rounding (what the float32 SIMT kernels do not do): the probabilities P, the output gradient
// dO and dS = P (dP - D) are rounded to bf16 as the products read them, as in FlashAttention;
// the softmax normaliser sums the float32 P. D = rowsum(dO o O) is taken from the forward's
// bf16 output, as FlashAttention-2 does, before the dQ and dK/dV passes, which need no atomics:
//   dQ pass   per query row:  dq = scale sum_j dS_ij k_j
//   dK/dV     per key row j over its group's heads and rows i >= j:
//             dv_j = sum_i P_ij dO_i;  dk_j = scale sum_i dS_ij q_i
// At head_dim 256 (Gemma) the dK and dV accumulators together would be 256 registers a thread,
// more than a thread has: dV and dK are then two passes (DkvPart), each forming the scores again
// -- five products a tile instead of four -- and the other operand's tiles are 32 rows, so that
// a block's shared memory (kSharedBytes: 145 KiB in the forward) fits an A100's 163 KiB.
// With a score cap (kernels::AttentionScores, Gemma 2) each score is capped in float32 as the
// softmax reads it, s = cap tanh(scale q.k / cap), and dS carries the cap's slope 1 - (s / cap)^2.
// Under a sliding window (i - window < j <= i) the tiles before the block's first row's window
// are not staged, those after its last row's not visited, and the rest masked per element.
//
// The kernels themselves (this header) apart from their launches (tensor_core_attention.cu), so
// that tests/unit/kernels/tensor_core_attention_emulated_test.cpp can run them on the CPU under
// tests/common/cuda_emulation.h.
#pragma once

#include <algorithm>
#include <cmath>

#ifdef __CUDACC__
#include <cuda_bf16.h>
#include <mma.h>
#endif

#include "kernels/cuda/device_helpers.cuh"

#ifndef SPIN_DYNAMIC_SHARED  // the block's dynamic shared memory as `unsigned char name[]`
#define SPIN_DYNAMIC_SHARED(name) extern __shared__ __align__(128) unsigned char name[]
#endif

// Internal linkage: each file that includes this (the launches' .cu, the emulation test) has its
// own copy.
namespace spin::kernels::cuda_detail::tensor_core {
namespace {

using namespace nvcuda;
using bf16 = __nv_bfloat16;

constexpr int kWarps = 4;               // per block
constexpr int kRows = 16;               // rows per warp: one WMMA tile
constexpr int kBlock = kWarps * kRows;  // rows per block
constexpr int kBlockThreads = 32 * kWarps;
// Rows of the other operand per shared-memory tile: 64, and 32 at head_dim 256, where 64-row
// tiles would take 175-190 KiB of shared memory a block, over an A100's 163 KiB.
template <int HD>
constexpr int kTile = HD > 128 ? 32 : 64;
static_assert(kBlock % kTile<64> == 0 && kBlock % kTile<256> == 0,
              "the dK/dV pass starts its query tiles at its block's first key");

// Row strides of the shared-memory arrays, in elements: padded by 16 bytes so that a warp's
// fragment loads spread over the banks; every fragment starts 32-byte aligned (WMMA's rule) as
// long as fragments start at multiples of 16 rows and 16 columns.
template <int HD>
constexpr int kLdX = HD + 8;         // bf16 [rows][HD] tiles
template <int HD>
constexpr int kLdS = kTile<HD> + 4;  // float [16][kTile] scores
template <int HD>
constexpr int kLdP = kTile<HD> + 8;  // bf16 [16][kTile] probabilities / dS
template <int HD>
constexpr int kLdO = HD + 4;         // float [16][HD] accumulators

using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major>;
using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major>;
using FragBt = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major>;  // X^T of a row-major X
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

// tile[r][0, HD) = src[(first + r) * ld, + HD) for r < rows, zeros for rows at or past len;
// bf16 rows move as 16-byte vectors, float32 rows (dO) are rounded to bf16 on the way.
template <int HD>
__device__ void stage_rows(bf16* tile, const bf16* src, long long ld, long long first, long long len, int rows) {
  constexpr int kVectors = HD / 8;
  for (int e = threadIdx.x; e < rows * kVectors; e += kBlockThreads) {
    const int r = e / kVectors, c = e % kVectors * 8;
    uint4 value = make_uint4(0u, 0u, 0u, 0u);
    if (first + r < len) value = *reinterpret_cast<const uint4*>(src + (first + r) * ld + c);
    *reinterpret_cast<uint4*>(tile + r * kLdX<HD> + c) = value;
  }
}
template <int HD>
__device__ void stage_rows(bf16* tile, const float* src, long long ld, long long first, long long len, int rows) {
  constexpr int kVectors = HD / 4;
  for (int e = threadIdx.x; e < rows * kVectors; e += kBlockThreads) {
    const int r = e / kVectors, c = e % kVectors * 4;
    float4 value = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (first + r < len) value = *reinterpret_cast<const float4*>(src + (first + r) * ld + c);
    auto* out = reinterpret_cast<__nv_bfloat162*>(tile + r * kLdX<HD> + c);
    out[0] = __floats2bfloat162_rn(value.x, value.y);
    out[1] = __floats2bfloat162_rn(value.z, value.w);
  }
}

// s[16][kTile] (float, stride kLdS) = A X^T: A a warp's 16 rows of a [rows][HD] tile, X a
// [kTile][HD] tile -- the scores of 16 queries against a tile of keys (or their transposes).
template <int HD>
__device__ void products_t(float* s, const bf16* a, const bf16* x) {
  FragC acc[kTile<HD> / 16];
#pragma unroll
  for (int jb = 0; jb < kTile<HD> / 16; ++jb) wmma::fill_fragment(acc[jb], 0.0f);
#pragma unroll 1  // (the fragments' arrays need only the inner loop unrolled; registers are scarce)
  for (int kk = 0; kk < HD / 16; ++kk) {
    FragA fa;
    wmma::load_matrix_sync(fa, a + kk * 16, kLdX<HD>);
#pragma unroll
    for (int jb = 0; jb < kTile<HD> / 16; ++jb) {
      FragBt fb;
      wmma::load_matrix_sync(fb, x + jb * 16 * kLdX<HD> + kk * 16, kLdX<HD>);
      wmma::mma_sync(acc[jb], fa, fb, acc[jb]);
    }
  }
#pragma unroll
  for (int jb = 0; jb < kTile<HD> / 16; ++jb) {
    wmma::store_matrix_sync(s + jb * 16, acc[jb], kLdS<HD>, wmma::mem_row_major);
  }
}

// acc[16][N] += P X: P a warp's [16][kTile] bf16 (stride kLdP), X the first N columns at x of
// a [kTile][HD] tile (all of them by default).
template <int HD, int N = HD>
__device__ void accumulate(FragC (&acc)[N / 16], const bf16* p, const bf16* x) {
#pragma unroll 1
  for (int kk = 0; kk < kTile<HD> / 16; ++kk) {
    FragA fa;
    wmma::load_matrix_sync(fa, p + kk * 16, kLdP<HD>);
#pragma unroll
    for (int nb = 0; nb < N / 16; ++nb) {
      FragB fb;
      wmma::load_matrix_sync(fb, x + kk * 16 * kLdX<HD> + nb * 16, kLdX<HD>);
      wmma::mma_sync(acc[nb], fa, fb, acc[nb]);
    }
  }
}

// Writes a warp's accumulated [16][HD] rows to dst (row stride ld), times `factor`, for the rows
// before `valid`, through `staging` ([16][kLdO] floats of shared memory).
template <int HD, class Out>
__device__ void write_rows(Out* dst, long long ld, const FragC (&acc)[HD / 16], float factor, int valid,
                           float* staging) {
#pragma unroll
  for (int nb = 0; nb < HD / 16; ++nb) {
    wmma::store_matrix_sync(staging + nb * 16, acc[nb], kLdO<HD>, wmma::mem_row_major);
  }
  __syncwarp();
  for (int e = threadIdx.x % 32; e < valid * HD; e += 32) {
    const int r = e / HD, c = e % HD;
    dst[r * ld + c] = factor * staging[r * kLdO<HD> + c];
  }
}

// This block's rows of its sequence (blockIdx.z) and this warp's among them.
struct Rows {
  long long start, len;  // the sequence's first packed row and its length
  long long first;       // the block's first row within the sequence
  long long warp_first;  // this warp's
  __device__ explicit Rows(const long long* cu_seqlens)
      : start(cu_seqlens[blockIdx.z]),
        len(cu_seqlens[blockIdx.z + 1] - start),
        first(static_cast<long long>(blockIdx.x) * kBlock),
        warp_first(first + threadIdx.x / 32 * kRows) {}
  __device__ bool warp_active() const { return warp_first < len; }
  __device__ int warp_valid() const { return static_cast<int>(min(static_cast<long long>(kRows), len - warp_first)); }
};

// ---- forward ------------------------------------------------------------------------------
template <int HD>
struct ForwardShared {
  bf16 q[kBlock * kLdX<HD>];
  bf16 k[kTile<HD> * kLdX<HD>];
  bf16 v[kTile<HD> * kLdX<HD>];
  float s[kWarps][kRows * kLdS<HD>];
  bf16 p[kWarps][kRows * kLdP<HD>];
  float o[kWarps][kRows * kLdO<HD>];  // the running, unnormalised output
};

// Online softmax (per row: running max m, sum l) with O rescaled in shared memory. Two lanes
// per row, each half of the columns.
template <int HD>
__global__ void __launch_bounds__(kBlockThreads)
    tc_forward_kernel(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, const long long* cu_seqlens,
                      const long long* kv_starts, int heads, int kv_heads, float scale, float softcap,
                      long long window) {
  SPIN_DYNAMIC_SHARED(raw);
  auto& sh = *reinterpret_cast<ForwardShared<HD>*>(raw);
  const Rows rows(cu_seqlens);
  if (rows.first >= rows.len) return;  // the whole block: before any barrier
  const long long start = rows.start, len = rows.len;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, r = lane / 2, half = lane % 2;
  const int h = blockIdx.y, g = h / (heads / kv_heads);
  const long long q_ld = static_cast<long long>(heads) * HD, kv_ld = static_cast<long long>(kv_heads) * HD;
  const long long row = rows.warp_first + r;  // this lane's query row
  const long long kv_start = kv_starts != nullptr ? kv_starts[blockIdx.z] : start;
  float* s = sh.s[warp];
  bf16* p = sh.p[warp];
  float* o = sh.o[warp];
  stage_rows<HD>(sh.q, q + start * q_ld + h * HD, q_ld, rows.first, len, kBlock);
  for (int e = lane; e < kRows * HD; e += 32) o[e / HD * kLdO<HD> + e % HD] = 0.0f;
  float m = -INFINITY, l = 0.0f;
  const long long last_key = min(len, rows.first + kBlock) - 1;  // the block's last row sees it
  const long long row_first = window_start(row, window), warp_first_key = window_start(rows.warp_first, window);
  constexpr int kHalf = kTile<HD> / 2;  // a lane's columns
  for (long long j0 = window_start(rows.first, window); j0 <= last_key; j0 += kTile<HD>) {
    __syncthreads();  // the previous tiles are no longer read
    stage_rows<HD>(sh.k, k + kv_start * kv_ld + g * HD, kv_ld, j0, len, kTile<HD>);
    stage_rows<HD>(sh.v, v + kv_start * kv_ld + g * HD, kv_ld, j0, len, kTile<HD>);
    __syncthreads();
    if (!rows.warp_active() || j0 > rows.warp_first + kRows - 1 || j0 + kTile<HD> <= warp_first_key) {
      continue;  // the warp's rows see none of these keys
    }
    products_t<HD>(s, sh.q + warp * kRows * kLdX<HD>, sh.k);
    __syncwarp();
    float* sr = s + r * kLdS<HD>;
    bf16* pr = p + r * kLdP<HD>;
    float tile_max = -INFINITY;
    for (int c = half * kHalf; c < (half + 1) * kHalf; ++c) {
      const bool seen = j0 + c <= row && j0 + c >= row_first && j0 + c < len;
      const float x = seen ? softcap_scores(sr[c] * scale, softcap) : -INFINITY;
      sr[c] = x;
      tile_max = fmaxf(tile_max, x);
    }
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
    const float m_new = fmaxf(m, tile_max);
    const float shift = m_new == -INFINITY ? 0.0f : m_new;  // a row with no key seen yet
    const float correction = expf(m - shift);
    float sum = 0.0f;
    for (int c = half * kHalf; c < (half + 1) * kHalf; ++c) {
      const float e = expf(sr[c] - shift);
      sum += e;
      pr[c] = __float2bfloat16_rn(e);
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    l = l * correction + sum;
    m = m_new;
    for (int c = half * (HD / 2); c < (half + 1) * (HD / 2); ++c) o[r * kLdO<HD> + c] *= correction;
    __syncwarp();
    // O += P V through the accumulators, at most 128 columns at a time (at head_dim 256 all 16
    // fragments at once would take the registers the products need).
    constexpr int kColumns = HD < 128 ? HD : 128;
#pragma unroll 1
    for (int c0 = 0; c0 < HD; c0 += kColumns) {
      FragC acc[kColumns / 16];
#pragma unroll
      for (int nb = 0; nb < kColumns / 16; ++nb) {
        wmma::load_matrix_sync(acc[nb], o + c0 + nb * 16, kLdO<HD>, wmma::mem_row_major);
      }
      accumulate<HD, kColumns>(acc, p, sh.v + c0);
#pragma unroll
      for (int nb = 0; nb < kColumns / 16; ++nb) {
        wmma::store_matrix_sync(o + c0 + nb * 16, acc[nb], kLdO<HD>, wmma::mem_row_major);
      }
    }
    __syncwarp();
  }
  if (!rows.warp_active() || row >= len) return;
  const float inv = 1.0f / l;
  bf16* dst = out + (start + row) * q_ld + h * HD;
  for (int c = half * (HD / 2); c < (half + 1) * (HD / 2); ++c) {
    dst[c] = __float2bfloat16_rn(o[r * kLdO<HD> + c] * inv);
  }
  if (half == 0) lse[(start + row) * heads + h] = m + logf(l);
}

// ---- backward -----------------------------------------------------------------------------
// delta[row, h] = dO . O over head_dim: FlashAttention-2's D (= sum_j P_j dP_j); one warp per
// (row, head) of the packed [rows, heads, head_dim] arrays.
__global__ void tc_delta_kernel(float* delta, const float* dout, const bf16* out, long long rows_heads, int head_dim) {
  const int lane = threadIdx.x % 32;
  const long long warps = static_cast<long long>(gridDim.x) * (blockDim.x / 32);
  for (long long w = blockIdx.x * static_cast<long long>(blockDim.x / 32) + threadIdx.x / 32; w < rows_heads;
       w += warps) {
    float d = 0.0f;
    for (int e = lane; e < head_dim; e += 32) d += dout[w * head_dim + e] * __bfloat162float(out[w * head_dim + e]);
    d = warp_sum(d);
    if (lane == 0) delta[w] = d;
  }
}

template <int HD>
struct DqShared {
  bf16 q[kBlock * kLdX<HD>];  // with dout: the staging of the results at the end
  bf16 dout[kBlock * kLdX<HD>];
  bf16 k[kTile<HD> * kLdX<HD>];
  bf16 v[kTile<HD> * kLdX<HD>];
  float s[kWarps][kRows * kLdS<HD>];
  float dp[kWarps][kRows * kLdS<HD>];
  bf16 ds[kWarps][kRows * kLdP<HD>];
};
// The results' staging (dQ's in q and dout, dK/dV's in k and v: two block-sized tiles) holds
// every warp's float32 [16][HD] accumulators.
template <int HD>
constexpr bool kStagingFits = sizeof(bf16) * 2 * kBlock * kLdX<HD> >= sizeof(float) * kWarps * kRows * kLdO<HD>;
static_assert(kStagingFits<64> && kStagingFits<128> && kStagingFits<256>, "staging fits");

// dS = P (dP - D) c' with P = exp(c(scale s) - lse) (c the cap, c' its slope; none without one),
// zero where masked (outside [first_visible, last_visible]); two lanes per row.
template <int HD>
__device__ void ds_row(bf16* ds, const float* s, const float* dp, float scale, float softcap, float row_lse,
                       float row_delta, int half, long long first_column, long long first_visible,
                       long long last_visible, long long len) {
  constexpr int kHalf = kTile<HD> / 2;
  for (int c = half * kHalf; c < (half + 1) * kHalf; ++c) {
    const long long column = first_column + c;
    const bool seen = column >= first_visible && column <= last_visible && column < len;
    const float capped = softcap_scores(s[c] * scale, softcap);
    ds[c] = __float2bfloat16_rn(seen ? expf(capped - row_lse) * (dp[c] - row_delta) * softcap_grad(capped, softcap)
                                     : 0.0f);
  }
}

template <int HD>
__global__ void __launch_bounds__(kBlockThreads)
    tc_dq_kernel(float* dq, const float* dout, const bf16* q, const bf16* k, const bf16* v, const float* lse,
                 const float* delta, const long long* cu_seqlens, int heads, int kv_heads, float scale,
                 float softcap, long long window) {
  SPIN_DYNAMIC_SHARED(raw);
  auto& sh = *reinterpret_cast<DqShared<HD>*>(raw);
  const Rows rows(cu_seqlens);
  if (rows.first >= rows.len) return;
  const long long start = rows.start, len = rows.len;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, r = lane / 2, half = lane % 2;
  const int h = blockIdx.y, g = h / (heads / kv_heads);
  const long long q_ld = static_cast<long long>(heads) * HD, kv_ld = static_cast<long long>(kv_heads) * HD;
  const long long row = rows.warp_first + r;
  const float row_lse = row < len ? lse[(start + row) * heads + h] : 0.0f;
  const float row_delta = row < len ? delta[(start + row) * heads + h] : 0.0f;
  stage_rows<HD>(sh.q, q + start * q_ld + h * HD, q_ld, rows.first, len, kBlock);
  stage_rows<HD>(sh.dout, dout + start * q_ld + h * HD, q_ld, rows.first, len, kBlock);
  FragC acc[HD / 16];
#pragma unroll
  for (int nb = 0; nb < HD / 16; ++nb) wmma::fill_fragment(acc[nb], 0.0f);
  const long long last_key = min(len, rows.first + kBlock) - 1;
  const long long row_first = window_start(row, window), warp_first_key = window_start(rows.warp_first, window);
  for (long long j0 = window_start(rows.first, window); j0 <= last_key; j0 += kTile<HD>) {
    __syncthreads();
    stage_rows<HD>(sh.k, k + start * kv_ld + g * HD, kv_ld, j0, len, kTile<HD>);
    stage_rows<HD>(sh.v, v + start * kv_ld + g * HD, kv_ld, j0, len, kTile<HD>);
    __syncthreads();
    if (!rows.warp_active() || j0 > rows.warp_first + kRows - 1 || j0 + kTile<HD> <= warp_first_key) continue;
    products_t<HD>(sh.s[warp], sh.q + warp * kRows * kLdX<HD>, sh.k);       // S = Q K^T
    products_t<HD>(sh.dp[warp], sh.dout + warp * kRows * kLdX<HD>, sh.v);   // dP = dO V^T
    __syncwarp();
    ds_row<HD>(sh.ds[warp] + r * kLdP<HD>, sh.s[warp] + r * kLdS<HD>, sh.dp[warp] + r * kLdS<HD>, scale, softcap, row_lse,
           row_delta, half, j0, row_first, row, len);
    __syncwarp();
    accumulate<HD>(acc, sh.ds[warp], sh.k);  // dQ += dS K
  }
  __syncthreads();  // the q/dO rows become the staging area
  if (!rows.warp_active()) return;
  float* staging = reinterpret_cast<float*>(sh.q) + warp * kRows * kLdO<HD>;
  write_rows<HD>(dq + (start + rows.warp_first) * q_ld + h * HD, q_ld, acc, scale, rows.warp_valid(), staging);
}

template <int HD>
struct DkvShared {
  bf16 k[kBlock * kLdX<HD>];  // with v: the staging of the results at the end
  bf16 v[kBlock * kLdX<HD>];
  bf16 q[kTile<HD> * kLdX<HD>];
  bf16 dout[kTile<HD> * kLdX<HD>];
  float lse[kTile<HD>];
  float delta[kTile<HD>];
  float st[kWarps][kRows * kLdS<HD>];   // S^T: the warp's keys x the tile's queries
  float dpt[kWarps][kRows * kLdS<HD>];  // dP^T
  bf16 pt[kWarps][kRows * kLdP<HD>];
  bf16 dst[kWarps][kRows * kLdP<HD>];   // dS^T
};

// What one dK/dV pass accumulates and writes: both, or (head_dim 256) one of them.
enum class DkvPart { Both, Values, Keys };
template <int HD>
constexpr bool kSplitDkv = HD > 128;

// Blocks of keys of kv head blockIdx.y; the query heads of its group in turn.
template <int HD, DkvPart Part>
__global__ void __launch_bounds__(kBlockThreads)
    tc_dkv_kernel(float* dk, float* dv, const float* dout, const bf16* q, const bf16* k, const bf16* v,
                  const float* lse, const float* delta, const long long* cu_seqlens, int heads, int kv_heads,
                  float scale, float softcap, long long window) {
  constexpr bool kValues = Part != DkvPart::Keys, kKeys = Part != DkvPart::Values;
  SPIN_DYNAMIC_SHARED(raw);
  auto& sh = *reinterpret_cast<DkvShared<HD>*>(raw);
  const Rows keys(cu_seqlens);  // here the rows are keys
  if (keys.first >= keys.len) return;
  const long long start = keys.start, len = keys.len;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, r = lane / 2, half = lane % 2;
  const int g = blockIdx.y, group = heads / kv_heads;
  const long long q_ld = static_cast<long long>(heads) * HD, kv_ld = static_cast<long long>(kv_heads) * HD;
  const long long key = keys.warp_first + r;  // this lane's key row
  stage_rows<HD>(sh.k, k + start * kv_ld + g * HD, kv_ld, keys.first, len, kBlock);
  stage_rows<HD>(sh.v, v + start * kv_ld + g * HD, kv_ld, keys.first, len, kBlock);
  FragC dk_acc[kKeys ? HD / 16 : 1], dv_acc[kValues ? HD / 16 : 1];  // (one unused fragment in a split pass)
#pragma unroll
  for (int nb = 0; nb < HD / 16; ++nb) {
    if constexpr (kKeys) wmma::fill_fragment(dk_acc[nb], 0.0f);
    if constexpr (kValues) wmma::fill_fragment(dv_acc[nb], 0.0f);
  }
  // Query rows i >= the block's first key: tiles from that key on (kBlock a multiple of kTile); under a
  // window, up to its last key's last query. The warp's last key's last query: warp_end - 1.
  const long long end = window > 0 ? min(len, min(len, keys.first + kBlock) - 1 + window) : len;
  const long long warp_end = window > 0 ? keys.warp_first + kRows - 1 + window : len;
  for (int h = g * group; h < (g + 1) * group; ++h) {
    for (long long i0 = keys.first; i0 < end; i0 += kTile<HD>) {
      __syncthreads();
      stage_rows<HD>(sh.q, q + start * q_ld + h * HD, q_ld, i0, len, kTile<HD>);
      stage_rows<HD>(sh.dout, dout + start * q_ld + h * HD, q_ld, i0, len, kTile<HD>);
      for (int i = threadIdx.x; i < kTile<HD>; i += kBlockThreads) {
        sh.lse[i] = i0 + i < len ? lse[(start + i0 + i) * heads + h] : 0.0f;
        sh.delta[i] = i0 + i < len ? delta[(start + i0 + i) * heads + h] : 0.0f;
      }
      __syncthreads();
      if (!keys.warp_active() || i0 + kTile<HD> - 1 < keys.warp_first || i0 >= warp_end) continue;  // none sees the warp's keys
      products_t<HD>(sh.st[warp], sh.k + warp * kRows * kLdX<HD>, sh.q);        // S^T = K Q^T
      if constexpr (kKeys) products_t<HD>(sh.dpt[warp], sh.v + warp * kRows * kLdX<HD>, sh.dout);  // dP^T = V dO^T
      __syncwarp();
      const float* st = sh.st[warp] + r * kLdS<HD>;
      const float* dpt = sh.dpt[warp] + r * kLdS<HD>;
      bf16* pt = sh.pt[warp] + r * kLdP<HD>;
      bf16* dst = sh.dst[warp] + r * kLdP<HD>;
      for (int c = half * (kTile<HD> / 2); c < (half + 1) * (kTile<HD> / 2); ++c) {
        const long long query = i0 + c;
        // causal (query i sees keys j <= i) and within the window
        const bool seen = query >= key && query < len && key < len && (window == 0 || query - key < window);
        const float capped = softcap_scores(st[c] * scale, softcap);
        const float p = seen ? expf(capped - sh.lse[c]) : 0.0f;
        if constexpr (kValues) pt[c] = __float2bfloat16_rn(p);
        if constexpr (kKeys) dst[c] = __float2bfloat16_rn(p * (dpt[c] - sh.delta[c]) * softcap_grad(capped, softcap));
      }
      __syncwarp();
      if constexpr (kValues) accumulate<HD>(dv_acc, sh.pt[warp], sh.dout);  // dV += P^T dO
      if constexpr (kKeys) accumulate<HD>(dk_acc, sh.dst[warp], sh.q);      // dK += dS^T Q
    }
  }
  __syncthreads();  // the k/v tiles become the staging area
  if (!keys.warp_active()) return;
  float* staging = reinterpret_cast<float*>(sh.k) + warp * kRows * kLdO<HD>;
  const long long at = (start + keys.warp_first) * kv_ld + g * HD;
  if constexpr (kKeys) write_rows<HD>(dk + at, kv_ld, dk_acc, scale, keys.warp_valid(), staging);
  if constexpr (kKeys && kValues) __syncwarp();  // the staging area is read before it is written again
  if constexpr (kValues) write_rows<HD>(dv + at, kv_ld, dv_acc, 1.0f, keys.warp_valid(), staging);
}

// The most shared memory a kernel of head size HD takes: what the device must let a block have.
template <int HD>
constexpr unsigned kSharedBytes =
    static_cast<unsigned>(std::max({sizeof(ForwardShared<HD>), sizeof(DqShared<HD>), sizeof(DkvShared<HD>)}));
static_assert(kSharedBytes<128> <= 163 * 1024 && kSharedBytes<256> <= 163 * 1024,
              "every head size runs on every sm_80+ device (A100: 163 KiB a block)");

}  // namespace
}  // namespace spin::kernels::cuda_detail::tensor_core
