// The device code of CudaKernels' own kernels (cuda_kernels.cu launches them): element-wise
// work, the optimizer's range-table passes, row reductions (RMSNorm, log-softmax pieces; the
// attention's softmax is in attention_softmax_kernels.cuh). Kept apart from the launches so that tests/unit/kernels/cuda/cuda_kernels_test.cpp
// can run this very source on the CPU under tests/common/cuda_emulation.h.
#pragma once

#include <cmath>
#include <vector>

#ifdef __CUDACC__
#include <cuda_bf16.h>
#endif

#include "core/philox_rounds.h"
#include "kernels/cuda/device_helpers.cuh"

// Internal linkage: each file that includes this has its own copy.
namespace spin::kernels::cuda_detail::device {
namespace {

// ---- element-wise ------------------------------------------------------------------------
__global__ void embedding_forward_kernel(float* out, const int* ids, const float* table, long long n, long long hidden,
                                         long long vocab_start, long long rows, float scale) {
  SPIN_GRID_STRIDE(e, n * hidden) {
    const long long i = e / hidden, j = e % hidden;
    const long long row = ids[i] - vocab_start;
    out[e] = (row >= 0 && row < rows) ? table[row * hidden + j] * scale : 0.0f;
  }
}
__global__ void embedding_backward_kernel(float* dtable, const int* ids, const float* dout, long long n,
                                          long long hidden, long long vocab_start, long long rows, float scale) {
  SPIN_GRID_STRIDE(e, n * hidden) {
    const long long i = e / hidden, j = e % hidden;
    const long long row = ids[i] - vocab_start;
    if (row >= 0 && row < rows) atomicAdd(dtable + row * hidden + j, dout[e] * scale);
  }
}
// A kernel's element in memory: float32, or bf16 (mixed precision) rounded as written and
// widened as read.
__device__ inline void store(float* out, float value) { *out = value; }
__device__ inline void store(__nv_bfloat16* out, float value) { *out = __float2bfloat16_rn(value); }
__device__ inline float load(const float* in) { return *in; }
__device__ inline float load(const __nv_bfloat16* in) { return __bfloat162float(*in); }

// One thread a rotated pair of a row's head: (i, i + half), or with `interleaved` (2i, 2i + 1);
// the dimensions past rotary_dim are not touched. A row's heads are q's `heads` then k's
// `kv_heads` (attention's q and k in one launch; k null and kv_heads 0 for one tensor).
template <class T>
__global__ void rope_kernel(T* q, T* k, const int* positions, const float* cos, const float* sin, long long n,
                            long long heads, long long kv_heads, long long head_dim, long long rotary_dim,
                            bool interleaved, float sign) {
  const long long half = rotary_dim / 2, row_heads = heads + kv_heads;
  SPIN_GRID_STRIDE(e, n * row_heads * half) {
    const long long i = e % half, rh = e / half, row = rh / row_heads, h = rh % row_heads;
    const long long table = static_cast<long long>(positions[row]) * half + i;
    T* head = h < heads ? q + (row * heads + h) * head_dim : k + (row * kv_heads + h - heads) * head_dim;
    T* lo = head + (interleaved ? 2 * i : i);
    T* hi = lo + (interleaved ? 1 : half);
    const float a = load(lo), b = load(hi), c = cos[table], s = sin[table];
    store(lo, a * c - sign * b * s);
    store(hi, b * c + sign * a * s);
  }
}

// The MLP's activation, out = act(gate) * up (kernels.h): SwiGLU, or GeGLU with GELU's tanh form,
// computed as the CPU's (kernels/cpu/glu.cpp): (1 + tanh(u)) / 2 = 1 / (1 + e^-2u).
constexpr float kGeluBeta = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluKappa = 0.044715f;
// e^-2u, saturated below overflow (so that s e^-2u below stays finite).
__device__ inline float gelu_exp_minus_2u(float g) {
  return expf(fminf(-2.0f * kGeluBeta * (g + kGeluKappa * (g * g * g)), 88.0f));
}

// The exact GELU (GPT-NeoX's): g Phi(g), its slope Phi(g) + g phi(g). A plain MLP passes up null:
// out = act(gate), dgate = dout act'(gate), dup not written.
constexpr float kInvSqrt2 = 0.7071067811865476f;    // 1 / sqrt(2)
constexpr float kInvSqrt2Pi = 0.3989422804014327f;  // 1 / sqrt(2 pi)

// act(g) and its slope.
__device__ inline float activation_value(float g, Activation act) {
  switch (act) {
    case Activation::Silu: return g / (1.0f + expf(-g));
    case Activation::GeluTanh: return g / (1.0f + gelu_exp_minus_2u(g));
    case Activation::Gelu: break;
  }
  return g * 0.5f * (1.0f + erff(g * kInvSqrt2));
}
__device__ inline float activation_slope(float g, Activation act) {
  switch (act) {
    case Activation::Silu: {
      const float s = 1.0f / (1.0f + expf(-g));
      return s * (1.0f + g * (1.0f - s));
    }
    case Activation::GeluTanh: {
      const float e = gelu_exp_minus_2u(g), s = 1.0f / (1.0f + e);
      return s + 2.0f * g * s * (s * e) * kGeluBeta * (1.0f + 3.0f * kGeluKappa * g * g);
    }
    case Activation::Gelu: break;
  }
  return 0.5f * (1.0f + erff(g * kInvSqrt2)) + g * kInvSqrt2Pi * expf(-0.5f * g * g);
}

template <class In, class Out>
__global__ void glu_forward_kernel(Out* out, const In* gate, const In* up, long long n, Activation act) {
  SPIN_GRID_STRIDE(i, n) {
    const float a = activation_value(load(gate + i), act);
    store(out + i, up == nullptr ? a : a * load(up + i));
  }
}
template <class In>
__global__ void glu_backward_kernel(float* dgate, float* dup, const float* dout, const In* gate, const In* up,
                                    long long n, Activation act) {
  SPIN_GRID_STRIDE(i, n) {
    const float g = load(gate + i), d = dout[i];
    if (up == nullptr) {
      dgate[i] = d * activation_slope(g, act);
    } else {
      dgate[i] = d * load(up + i) * activation_slope(g, act);
      dup[i] = d * activation_value(g, act);
    }
  }
}
// LoRA's dropout: one thread a row and group of four global columns (one Philox block), the mask
// core/philox_rounds.h's dropout_keeps; columns of the group outside [0, cols) are not touched.
template <class T>
__global__ void dropout_kernel(T* y, const T* x, const long long* row_keys, long long rows, long long cols,
                               long long col_offset, unsigned long long seed, unsigned site, float p, float scale,
                               bool accumulate) {
  const long long first = col_offset / 4, groups = spin::dropout_groups(col_offset, cols);
  SPIN_GRID_STRIDE(e, rows * groups) {
    const long long i = e / groups, g = first + e % groups;
    const unsigned keep = spin::dropout_keeps(seed, static_cast<unsigned long long>(row_keys[i]), site,
                                              static_cast<unsigned long long>(g), p);
    for (int j = 0; j < 4; ++j) {
      const long long c = g * 4 + j - col_offset;
      if (c < 0 || c >= cols) continue;
      const float v = load(x + i * cols + c) * ((keep >> j & 1u) != 0 ? scale : 0.0f);  // x 0 as the CPU's
      store(y + i * cols + c, accumulate ? load(y + i * cols + c) + v : v);
    }
  }
}
__global__ void add_kernel(float* y, const float* x, long long n) {
  SPIN_GRID_STRIDE(i, n) y[i] += x[i];
}
// dst[r, c] += src[r, c] over rows x cols, the rows dst_ld and src_ld floats apart (Kernels::add_2d).
__global__ void add_2d_kernel(float* dst, long long dst_ld, const float* src, long long src_ld, long long rows,
                              long long cols) {
  SPIN_GRID_STRIDE(e, rows * cols) dst[e / cols * dst_ld + e % cols] += src[e / cols * src_ld + e % cols];
}
__global__ void scale_kernel(float* y, const float* x, float alpha, long long n) {
  SPIN_GRID_STRIDE(i, n) y[i] = alpha * x[i];
}
// OLMo 1.7's clip_qkv (Kernels::clamp, clamp_backward): NaN compares false and passes through.
template <class T>
__global__ void clamp_kernel(T* out, const T* x, long long n, float limit) {
  SPIN_GRID_STRIDE(i, n) {
    const float v = load(x + i);
    store(out + i, v < -limit ? -limit : v > limit ? limit : v);
  }
}
template <class T>
__global__ void clamp_backward_kernel(float* dx, const float* dy, const T* x, long long n, float limit) {
  SPIN_GRID_STRIDE(i, n) {
    const float v = load(x + i);
    dx[i] = v >= -limit && v <= limit ? dy[i] : 0.0f;
  }
}
template <class T>
__global__ void scatter_rows_kernel(T* dst, const T* src, T* dst2, const T* src2, const long long* rows, long long n,
                                    long long width) {
  // src into dst, then src2 into dst2 by the same rows when given (a KV cache's keys and values).
  const long long each = n * width;
  SPIN_GRID_STRIDE(e, dst2 == nullptr ? each : 2 * each) {
    const bool second = e >= each;
    const long long f = second ? e - each : e;
    (second ? dst2 : dst)[rows[f / width] * width + f % width] = (second ? src2 : src)[f];
  }
}
template <class T>
__global__ void gather_rows_kernel(T* dst, const T* src, const long long* rows, long long n, long long width) {
  SPIN_GRID_STRIDE(e, n * width) dst[e] = src[rows[e / width] * width + e % width];
}
// ---- a mixture of experts' outputs joined, and the backward ------------------------------
// Each output element sums its row's k slots in order (the CPU's order: the same bits); slot -1: an
// output another rank computes (expert parallelism), left out, its weight's gradient 0 here.
__global__ void moe_combine_kernel(float* out, const float* y, const long long* slots, const float* weights,
                                   long long n, long long k, long long width) {
  SPIN_GRID_STRIDE(e, n * width) {
    const long long i = e / width, c = e % width;
    float sum = 0.0f;
    for (long long j = 0; j < k; ++j) {
      if (slots[i * k + j] < 0) continue;
      const float w = weights != nullptr ? weights[i * k + j] : 1.0f;
      sum += w * y[slots[i * k + j] * width + c];
    }
    out[e] = sum;
  }
}
__global__ void moe_combine_dy_kernel(float* dy, const float* dout, const long long* slots, const float* weights,
                                      long long n, long long k, long long width) {
  SPIN_GRID_STRIDE(e, n * k * width) {
    const long long slot = e / width, c = e % width;
    if (slots[slot] >= 0) dy[slots[slot] * width + c] = weights[slot] * dout[(slot / k) * width + c];
  }
}
// One block per (row, slot): the dot product of the row's output gradient and that expert's output.
__global__ void moe_combine_dweights_kernel(float* dweights, const float* dout, const float* y, const long long* slots,
                                            long long k, long long width) {
  __shared__ float shared[32];
  const long long slot = blockIdx.x;
  const float* g = dout + (slot / k) * width;
  const bool held = slots[slot] >= 0;  // the same for the whole block
  const float* v = y + (held ? slots[slot] : 0) * width;
  float dot = 0.0f;
  for (long long c = threadIdx.x; held && c < width; c += blockDim.x) dot += g[c] * v[c];
  dot = block_sum(dot, shared);
  if (threadIdx.x == 0) dweights[slot] = dot;
}
// ---- optimizer: many tensors of a flat buffer in one launch ------------------------------
// The ranges laid end to end form one index space of `total` elements; range r starts there at
// `begin` and in the buffers at `offset`.
struct FlatRange {
  long long begin;
  long long offset;
  int decay;
};
// The kernels' table of `ranges` (Kernels::Range or UpdateRange), to upload; `total` gets the
// length of the index space they form.
inline bool decays(const Kernels::Range&) { return true; }
inline bool decays(const Kernels::UpdateRange& r) { return r.decay; }
template <class R>
std::vector<FlatRange> flat_ranges(const R* ranges, Index count, long long& total) {
  std::vector<FlatRange> table;
  table.reserve(static_cast<std::size_t>(count));
  total = 0;
  for (Index i = 0; i < count; ++i) {
    table.push_back({total, ranges[i].offset, decays(ranges[i]) ? 1 : 0});
    total += ranges[i].length;
  }
  return table;
}
// The range holding index j, scanning on from range r (a thread's indices only grow in a
// grid-stride loop, so the scans add up to at most `count` steps per thread).
__device__ int range_of(const FlatRange* ranges, int count, int r, long long j) {
  while (r + 1 < count && ranges[r + 1].begin <= j) ++r;
  return r;
}
// AdamW (the CPU kernel's arithmetic); with `weights`, also the bf16 copy of the updated
// parameters, in the same pass.
__global__ void adamw_kernel(float* param, __nv_bfloat16* weights, const float* grad, float* m, float* v,
                             const FlatRange* ranges, int count, long long total, float step_size, float decay,
                             float b1, float b2, float eps, float scale, float bias2_sqrt) {
  int r = 0;
  SPIN_GRID_STRIDE(j, total) {
    r = range_of(ranges, count, r, j);
    const long long i = ranges[r].offset + (j - ranges[r].begin);
    const float g = grad[i] * scale;
    const float p = param[i] * (ranges[r].decay ? decay : 1.0f);
    const float mi = b1 * m[i] + (1.0f - b1) * g;
    const float vi = b2 * v[i] + (1.0f - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float updated = p - step_size * mi / (sqrtf(vi) / bias2_sqrt + eps);
    param[i] = updated;
    if (weights != nullptr) weights[i] = __float2bfloat16_rn(updated);
  }
}
// RMSprop (the CPU kernel's arithmetic); with `weights`, also the bf16 copy, in the same pass.
__global__ void rmsprop_kernel(float* param, __nv_bfloat16* weights, const float* grad, float* v,
                               const FlatRange* ranges, int count, long long total, float lr, float alpha,
                               float eps, float weight_decay, float scale) {
  int r = 0;
  SPIN_GRID_STRIDE(j, total) {
    r = range_of(ranges, count, r, j);
    const long long i = ranges[r].offset + (j - ranges[r].begin);
    const float p = param[i];
    const float g = grad[i] * scale + (ranges[r].decay ? weight_decay : 0.0f) * p;
    const float vi = alpha * v[i] + (1.0f - alpha) * g * g;
    v[i] = vi;
    const float updated = p - lr * g / (sqrtf(vi) + eps);
    param[i] = updated;
    if (weights != nullptr) weights[i] = __float2bfloat16_rn(updated);
  }
}
__global__ void sum_squares_kernel(double* total_out, const float* x, const FlatRange* ranges, int count,
                                   long long total) {
  __shared__ double shared[32];
  double acc = 0.0;
  int r = 0;
  SPIN_GRID_STRIDE(j, total) {
    r = range_of(ranges, count, r, j);
    const double xi = x[ranges[r].offset + (j - ranges[r].begin)];
    acc += xi * xi;
  }
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) atomicAdd(total_out, acc);
}
// out[i, j] = y[i, j] + bias[j], stored as Out (in place for float32; the rounding into bf16
// for a bf16 product with a bias).
template <class Out>
__global__ void bias_add_kernel(Out* out, const float* y, const float* bias, long long n, long long width) {
  SPIN_GRID_STRIDE(e, n * width) store(out + e, y[e] + bias[e % width]);
}
// dbias[j] += the sum of column j in row order: one thread per column, neighbouring threads
// reading neighbouring values of a row.
__global__ void bias_backward_kernel(float* dbias, const float* dy, long long n, long long width) {
  SPIN_GRID_STRIDE(j, width) {
    float sum = 0.0f;
    for (long long i = 0; i < n; ++i) sum += dy[i * width + j];
    dbias[j] += sum;
  }
}
__global__ void to_bf16_kernel(__nv_bfloat16* out, const float* in, long long n) {
  SPIN_GRID_STRIDE(i, n) out[i] = __float2bfloat16_rn(in[i]);
}
__global__ void to_f32_kernel(float* out, const __nv_bfloat16* in, long long n) {
  SPIN_GRID_STRIDE(i, n) out[i] = __bfloat162float(in[i]);
}
// ---- row reductions: one block per row ---------------------------------------------------
// x float32, or bf16 widened as read (Qwen3's head norms); the output float32 or bf16.
template <class Out, class In = float>
__global__ void rmsnorm_forward_kernel(Out* out, float* rstd, const In* x, const float* w, float w_offset,
                                       long long dim, float eps) {
  __shared__ float shared[32];
  const In* xi = x + blockIdx.x * dim;
  float ss = 0.0f;
  for (long long j = threadIdx.x; j < dim; j += blockDim.x) ss += load(xi + j) * load(xi + j);
  ss = block_sum(ss, shared);
  const float r = 1.0f / sqrtf(ss / static_cast<float>(dim) + eps);
  if (threadIdx.x == 0) rstd[blockIdx.x] = r;
  Out* oi = out + blockIdx.x * dim;
  for (long long j = threadIdx.x; j < dim; j += blockDim.x) store(oi + j, load(xi + j) * r * (w_offset + w[j]));
}
template <class In>
__global__ void rmsnorm_backward_dx_kernel(float* dx, const float* dout, const In* x, const float* w,
                                           float w_offset, const float* rstd, long long dim) {
  __shared__ float shared[32];
  const long long at = blockIdx.x * dim;
  float dot = 0.0f;
  for (long long j = threadIdx.x; j < dim; j += blockDim.x) dot += dout[at + j] * (w_offset + w[j]) * load(x + at + j);
  dot = block_sum(dot, shared);
  const float r = rstd[blockIdx.x];
  const float c = r * r * dot / static_cast<float>(dim);
  for (long long j = threadIdx.x; j < dim; j += blockDim.x) {
    dx[at + j] += r * (dout[at + j] * (w_offset + w[j]) - load(x + at + j) * c);
  }
}
// LayerNorm: out = (x - mean) r w + b, r = 1 / sqrt(var + eps), w and b each null where the norm
// has none (OLMo's has neither); the backward forms the mean again from x, as the forward did. w
// holds w_rows rows of dim, row i of x taking row i % w_rows (a weight per head: Cohere's q / k
// norms; 1 for the plain norm).
__device__ inline float row_mean(const float* xi, long long dim, float* shared) {
  float sum = 0.0f;
  for (long long j = threadIdx.x; j < dim; j += blockDim.x) sum += xi[j];
  return block_sum(sum, shared) / static_cast<float>(dim);
}
template <class Out>
__global__ void layernorm_forward_kernel(Out* out, float* rstd, const float* x, const float* weights, const float* b,
                                         long long dim, float eps, long long w_rows) {
  __shared__ float shared[32];
  const float* xi = x + blockIdx.x * dim;
  const float* w = weights != nullptr ? weights + (blockIdx.x % w_rows) * dim : nullptr;
  const float mean = row_mean(xi, dim, shared);
  float ss = 0.0f;
  for (long long j = threadIdx.x; j < dim; j += blockDim.x) ss += (xi[j] - mean) * (xi[j] - mean);
  ss = block_sum(ss, shared);
  const float r = 1.0f / sqrtf(ss / static_cast<float>(dim) + eps);
  if (threadIdx.x == 0) rstd[blockIdx.x] = r;
  Out* oi = out + blockIdx.x * dim;
  for (long long j = threadIdx.x; j < dim; j += blockDim.x) {
    store(oi + j, (xi[j] - mean) * r * (w != nullptr ? w[j] : 1.0f) + (b != nullptr ? b[j] : 0.0f));
  }
}
// dx by rows; each row's mean into `means` where it is given (for the weight's gradient).
__global__ void layernorm_backward_dx_kernel(float* dx, float* means, const float* dout, const float* x,
                                             const float* weights, const float* rstd, long long dim, long long w_rows) {
  __shared__ float shared[32];
  const long long at = blockIdx.x * dim;
  const float* w = weights != nullptr ? weights + (blockIdx.x % w_rows) * dim : nullptr;
  const float mean = row_mean(x + at, dim, shared), r = rstd[blockIdx.x];
  if (means != nullptr && threadIdx.x == 0) means[blockIdx.x] = mean;
  float sum = 0.0f, dot = 0.0f;
  for (long long j = threadIdx.x; j < dim; j += blockDim.x) {
    const float g = w != nullptr ? dout[at + j] * w[j] : dout[at + j];
    sum += g;
    dot += g * (x[at + j] - mean) * r;
  }
  const float a = block_sum(sum, shared) / static_cast<float>(dim);
  const float c = block_sum(dot, shared) / static_cast<float>(dim);
  for (long long j = threadIdx.x; j < dim; j += blockDim.x) {
    const float g = w != nullptr ? dout[at + j] * w[j] : dout[at + j];
    dx[at + j] += r * (g - a - (x[at + j] - mean) * r * c);
  }
}
// The norm over rows spread across ranks (Kernels::row_dot, the *_from_sums / *_from_dots pair).
// out[row] = sum_j a b (w), w null: 1.
__global__ void row_dot_kernel(float* out, const float* a, const float* b, const float* w, long long dim) {
  __shared__ float shared[32];
  const long long at = blockIdx.x * dim;
  float sum = 0.0f;
  for (long long j = threadIdx.x; j < dim; j += blockDim.x) sum += a[at + j] * (w ? w[j] : 1.0f) * b[at + j];
  sum = block_sum(sum, shared);
  if (threadIdx.x == 0) out[blockIdx.x] = sum;
}
template <class Out>
__global__ void rmsnorm_from_sums_kernel(Out* out, float* rstd, const float* x, const float* w, const float* sums,
                                         long long dim, long long total, float eps) {
  const float r = 1.0f / sqrtf(sums[blockIdx.x] / static_cast<float>(total) + eps);
  __syncthreads();  // every thread has read sums[row] before rstd, which may be sums, is written
  if (threadIdx.x == 0) rstd[blockIdx.x] = r;
  const long long at = blockIdx.x * dim;
  for (long long j = threadIdx.x; j < dim; j += blockDim.x) store(out + at + j, x[at + j] * r * w[j]);
}
// dx += r (dout w - x r^2 dots / total): element-wise over n x dim.
__global__ void rmsnorm_from_dots_dx_kernel(float* dx, const float* dout, const float* x, const float* w,
                                            const float* rstd, const float* dots, long long n, long long dim,
                                            long long total) {
  SPIN_GRID_STRIDE(i, n * dim) {
    const long long row = i / dim;
    const float r = rstd[row];
    const float c = r * r * dots[row] / static_cast<float>(total);
    dx[i] += r * (dout[i] * w[i % dim] - x[i] * c);
  }
}
// dw[j] += sum_i dout[i, j] x[i, j] rstd[i]: a thread per column over a chunk of rows (coalesced
// across columns), chunks combined with one atomic per column.
constexpr long long kRowsPerChunk = 256;
template <class In>
__global__ void rmsnorm_backward_dw_kernel(float* dw, const float* dout, const In* x, const float* rstd,
                                           long long n, long long dim) {
  const long long j = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
  if (j >= dim) return;
  const long long begin = blockIdx.y * kRowsPerChunk, end = min(n, begin + kRowsPerChunk);
  float acc = 0.0f;
  for (long long i = begin; i < end; ++i) acc += dout[i * dim + j] * load(x + i * dim + j) * rstd[i];
  atomicAdd(dw + j, acc);
}
// LayerNorm's dw += sum dout xhat (means: the rows' means, dw null: none) and db += sum dout
// (null: none), by columns over chunks of rows, as RMSNorm's. With w_rows weight rows (a weight per
// head) the columns are w_rows x dim, column (h, j) summing rows h, h + w_rows, ... of its chunk:
// a chunk is kRowsPerChunk groups of w_rows rows.
__global__ void layernorm_backward_dw_kernel(float* dw, float* db, const float* dout, const float* x,
                                             const float* means, const float* rstd, long long n, long long dim,
                                             long long w_rows) {
  const long long column = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
  if (column >= w_rows * dim) return;
  const long long head = column / dim, j = column % dim, groups = n / w_rows;
  const long long begin = blockIdx.y * kRowsPerChunk, end = min(groups, begin + kRowsPerChunk);
  float acc_w = 0.0f, acc_b = 0.0f;
  for (long long group = begin; group < end; ++group) {
    const long long i = group * w_rows + head;
    const float g = dout[i * dim + j];
    if (dw != nullptr) acc_w += g * (x[i * dim + j] - means[i]) * rstd[i];
    acc_b += g;
  }
  if (dw != nullptr) atomicAdd(dw + column, acc_w);
  if (db != nullptr) atomicAdd(db + column, acc_b);
}
__global__ void logits_max_kernel(float* row_max, const float* logits, long long ld, long long valid) {
  __shared__ float shared[32];
  const float* row = logits + blockIdx.x * ld;
  float m = -INFINITY;
  for (long long v = threadIdx.x; v < valid; v += blockDim.x) m = fmaxf(m, row[v]);
  m = block_max(m, shared);
  if (threadIdx.x == 0) row_max[blockIdx.x] = m;
}
__global__ void logits_sumexp_target_kernel(float* sumexp, float* target_logit, const float* logits,
                                            const float* row_max, const int* targets, long long ld, long long valid,
                                            long long vocab_start) {
  __shared__ float shared[32];
  const float* row = logits + blockIdx.x * ld;
  const float m = row_max[blockIdx.x];
  float sum = 0.0f;
  for (long long v = threadIdx.x; v < valid; v += blockDim.x) sum += expf(row[v] - m);
  sum = block_sum(sum, shared);
  if (threadIdx.x == 0) {
    sumexp[blockIdx.x] = sum;
    const long long t = targets[blockIdx.x] - vocab_start;
    target_logit[blockIdx.x] = (t >= 0 && t < valid) ? row[t] : 0.0f;
  }
}
__global__ void logprob_from_sums_kernel(float* logprob, float* lse, const float* sums, const int* targets,
                                        long long n) {
  SPIN_GRID_STRIDE(i, n) {
    const float l = lse[i] + logf(sums[i]);
    lse[i] = l;
    logprob[i] = targets[i] < 0 ? 0.0f : sums[n + i] - l;
  }
}
__global__ void logprob_backward_kernel(float* dlogits, const float* logits, const float* lse, const int* targets,
                                        const float* dlogprob, long long ld, long long valid, long long vocab_start,
                                        float softcap) {
  const long long i = blockIdx.x;
  const float g = targets[i] < 0 ? 0.0f : dlogprob[i];
  const float l = lse[i];
  const long long t = targets[i] - vocab_start;
  for (long long v = threadIdx.x; v < ld; v += blockDim.x) {
    const long long e = i * ld + v;
    // Read, then write the same element: dlogits may alias logits.
    const float y = logits[e];
    dlogits[e] = v < valid ? ((v == t ? g : 0.0f) - g * expf(y - l)) * softcap_grad(y, softcap) : 0.0f;
  }
}
// x = cap tanh(x / cap) (Kernels::softcap_forward).
__global__ void softcap_kernel(float* x, long long n, float cap) {
  SPIN_GRID_STRIDE(i, n) x[i] = softcap_scores(x[i], cap);
}

}  // namespace
}  // namespace spin::kernels::cuda_detail::device
