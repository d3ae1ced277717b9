// CudaKernels (cuda_kernels.h): float32 kernels, one thread block per row for row reductions
// (RMSNorm, softmax, log-softmax pieces), grid-stride loops for element-wise work, cuBLAS for
// every product. The arithmetic follows the CPU kernels line by line (kernels/cpu/), so each
// can be checked against its CPU twin (tests/gpu/).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include <cuda_bf16.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels_device.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_helpers.cuh"
#include "kernels/cuda/device_memory.h"

namespace spin::kernels {

using namespace cuda_detail;
using namespace cuda_detail::device;

namespace {
cublasOperation_t op(bool transpose) { return transpose ? CUBLAS_OP_T : CUBLAS_OP_N; }
}  // namespace

CudaKernels::CudaKernels(Attention attention)
    : stream_(cuda::compute_stream()), attention_(attention), allocator_(cuda::device_allocator()) {
  cuda::use_current_device();
  SPIN_CUBLAS_CHECK(cublasCreate(&blas_));
  SPIN_CUBLAS_CHECK(cublasSetStream(blas_, stream_));
  // Plain float32 products (no TF32): the CUDA path must agree with the CPU reference.
  SPIN_CUBLAS_CHECK(cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH));
}

CudaKernels::~CudaKernels() {
  if (blas_ != nullptr) cublasDestroy(blas_);
}

void CudaKernels::synchronize() const { SPIN_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

// Row-major C = A B is column-major C^T = B^T A^T: swap the operands and the sizes.
void CudaKernels::gemm(bool trans_a, bool trans_b, Index m, Index n, Index k, float alpha, const float* a, Index lda,
                       const float* b, Index ldb, float beta, float* c, Index ldc) const {
  if (m == 0 || n == 0) return;
  SPIN_CUBLAS_CHECK(cublasSgemm(blas_, op(trans_b), op(trans_a), static_cast<int>(n), static_cast<int>(m),
                                static_cast<int>(k), &alpha, b, static_cast<int>(ldb), a, static_cast<int>(lda), &beta,
                                c, static_cast<int>(ldc)));
}

void CudaKernels::gemm_batched(bool trans_a, bool trans_b, Index m, Index n, Index k, float alpha, const float* a,
                               Index lda, Index stride_a, const float* b, Index ldb, Index stride_b, float beta,
                               float* c, Index ldc, Index stride_c, Index batch) const {
  if (m == 0 || n == 0 || batch == 0) return;
  SPIN_CUBLAS_CHECK(cublasSgemmStridedBatched(blas_, op(trans_b), op(trans_a), static_cast<int>(n),
                                              static_cast<int>(m), static_cast<int>(k), &alpha, b,
                                              static_cast<int>(ldb), stride_b, a, static_cast<int>(lda), stride_a,
                                              &beta, c, static_cast<int>(ldc), stride_c, static_cast<int>(batch)));
}

void CudaKernels::linear_forward(float* y, const float* x, const float* w, Index n, Index in, Index out) const {
  gemm(false, true, n, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
}

void CudaKernels::linear_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, Index n,
                                  Index in, Index out, bool accumulate_dx) const {
  if (dx != nullptr) gemm(false, false, n, in, out, 1.0f, dy, out, w, in, accumulate_dx ? 1.0f : 0.0f, dx, in);
  gemm(true, false, out, in, n, 1.0f, dy, out, x, in, 1.0f, dw, in);
}

void CudaKernels::embedding_forward(float* out, const std::int32_t* ids, const float* table, Index n, Index hidden,
                                    Index vocab_start, Index rows) const {
  embedding_forward_kernel<<<blocks_for(n * hidden), kThreads, 0, stream_>>>(out, ids, table, n, hidden, vocab_start,
                                                                           rows);
  SPIN_CUDA_CHECK_LAUNCH("embedding_forward");
}

void CudaKernels::embedding_backward(float* dtable, const std::int32_t* ids, const float* dout, Index n, Index hidden,
                                     Index vocab_start, Index rows) const {
  embedding_backward_kernel<<<blocks_for(n * hidden), kThreads, 0, stream_>>>(dtable, ids, dout, n, hidden,
                                                                            vocab_start, rows);
  SPIN_CUDA_CHECK_LAUNCH("embedding_backward");
}

void CudaKernels::rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, Index n, Index dim,
                                  float eps) const {
  if (n == 0) return;
  rmsnorm_forward_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream_>>>(out, rstd, x, w, dim, eps);
  SPIN_CUDA_CHECK_LAUNCH("rmsnorm_forward");
}

void CudaKernels::rmsnorm_forward_bf16(std::uint16_t* out, float* rstd, const float* x, const float* w, Index n,
                                       Index dim, float eps) const {
  if (n == 0) return;
  rmsnorm_forward_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream_>>>(reinterpret_cast<__nv_bfloat16*>(out),
                                                                            rstd, x, w, dim, eps);
  SPIN_CUDA_CHECK_LAUNCH("rmsnorm_forward_bf16");
}

void CudaKernels::rmsnorm_forward_bf16_in(std::uint16_t* out, float* rstd, const std::uint16_t* x, const float* w,
                                          Index n, Index dim, float eps) const {
  if (n == 0) return;
  rmsnorm_forward_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream_>>>(
      reinterpret_cast<__nv_bfloat16*>(out), rstd, reinterpret_cast<const __nv_bfloat16*>(x), w, dim, eps);
  SPIN_CUDA_CHECK_LAUNCH("rmsnorm_forward_bf16_in");
}

namespace {
// RMSNorm's backward over x of element type In: dx by rows, dw by columns over chunks of rows.
template <class In>
void launch_rmsnorm_backward(cudaStream_t stream, float* dx, float* dw, const float* dout, const In* x,
                             const float* w, const float* rstd, Index n, Index dim) {
  if (n == 0) return;
  rmsnorm_backward_dx_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(dx, dout, x, w, rstd, dim);
  SPIN_CUDA_CHECK_LAUNCH("rmsnorm_backward (dx)");
  const dim3 grid(static_cast<unsigned>((dim + kThreads - 1) / kThreads),
                  static_cast<unsigned>((n + kRowsPerChunk - 1) / kRowsPerChunk));
  rmsnorm_backward_dw_kernel<<<grid, kThreads, 0, stream>>>(dw, dout, x, rstd, n, dim);
  SPIN_CUDA_CHECK_LAUNCH("rmsnorm_backward (dw)");
}
}  // namespace

void CudaKernels::rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w,
                                   const float* rstd, Index n, Index dim) const {
  launch_rmsnorm_backward(stream_, dx, dw, dout, x, w, rstd, n, dim);
}

void CudaKernels::rmsnorm_backward_bf16_in(float* dx, float* dw, const float* dout, const std::uint16_t* x,
                                           const float* w, const float* rstd, Index n, Index dim) const {
  launch_rmsnorm_backward(stream_, dx, dw, dout, reinterpret_cast<const __nv_bfloat16*>(x), w, rstd, n, dim);
}

void CudaKernels::rope_forward(float* x, const std::int32_t* positions, const float* cos, const float* sin, Index n,
                               Index heads, Index head_dim) const {
  rope_kernel<<<blocks_for(n * heads * (head_dim / 2)), kThreads, 0, stream_>>>(x, positions, cos, sin, n, heads,
                                                                               head_dim, 1.0f);
  SPIN_CUDA_CHECK_LAUNCH("rope_forward");
}

void CudaKernels::rope_forward_bf16(std::uint16_t* x, const std::int32_t* positions, const float* cos,
                                    const float* sin, Index n, Index heads, Index head_dim) const {
  rope_kernel<<<blocks_for(n * heads * (head_dim / 2)), kThreads, 0, stream_>>>(
      reinterpret_cast<__nv_bfloat16*>(x), positions, cos, sin, n, heads, head_dim, 1.0f);
  SPIN_CUDA_CHECK_LAUNCH("rope_forward_bf16");
}

void CudaKernels::rope_backward(float* dx, const std::int32_t* positions, const float* cos, const float* sin, Index n,
                                Index heads, Index head_dim) const {
  rope_kernel<<<blocks_for(n * heads * (head_dim / 2)), kThreads, 0, stream_>>>(dx, positions, cos, sin, n, heads,
                                                                               head_dim, -1.0f);
  SPIN_CUDA_CHECK_LAUNCH("rope_backward");
}

bool CudaKernels::fused(Index head_dim, Index num_seqs) const {
  return attention_ != Attention::Cublas && cuda_detail::fused_attention_supports(head_dim) &&
         num_seqs <= 65535;  // the grid's z extent
}

bool CudaKernels::tensor_cores(Index head_dim, Index num_seqs) const {
  return attention_ == Attention::TensorCores && cuda_detail::tensor_core_attention_supports(head_dim) &&
         fused(head_dim, num_seqs);
}

Index CudaKernels::attention_saved_size(const Index* cu_seqlens, Index num_seqs, Index heads, Index head_dim) const {
  if (!fused(head_dim, num_seqs)) return attention_probs_size(cu_seqlens, num_seqs, heads);
  return heads * cu_seqlens[num_seqs];  // a log-sum-exp per row and head, rows counted from 0
}

PooledBuffer CudaKernels::upload(const void* host, std::size_t bytes) const {
  PooledBuffer device(allocator_, bytes);
  // Ordered on the stream after earlier users of the pooled block; returns once the host
  // array is staged (pageable memory), so the caller may free it.
  SPIN_CUDA_CHECK(cudaMemcpyAsync(device.data(), host, bytes, cudaMemcpyHostToDevice, stream_));
  return device;
}

PooledBuffer CudaKernels::upload_indices(const Index* host, Index count) const {
  return upload(host, static_cast<std::size_t>(count) * sizeof(Index));
}

namespace {
// The most rows between consecutive offsets: the longest sequence or run.
long long longest(const Index* offsets, Index count) {
  long long most = 0;
  for (Index i = 0; i < count; ++i) most = std::max<long long>(most, offsets[i + 1] - offsets[i]);
  return most;
}
}  // namespace

cuda_detail::FusedAttentionArgs CudaKernels::fused_args(const void* q, const void* k, const void* v, bool bf16,
                                                        const Index* cu_seqlens, Index num_seqs, Index heads,
                                                        Index kv_heads, Index head_dim,
                                                        PooledBuffer& device_cu) const {
  device_cu = upload_indices(cu_seqlens, num_seqs + 1);
  cuda_detail::FusedAttentionArgs a;
  a.q = q, a.k = k, a.v = v, a.bf16 = bf16;
  a.cu_seqlens = device_cu.as<long long>();
  a.num_seqs = num_seqs;
  a.rows = cu_seqlens[num_seqs];
  a.longest = longest(cu_seqlens, num_seqs);
  a.heads = static_cast<int>(heads), a.kv_heads = static_cast<int>(kv_heads);
  a.head_dim = head_dim;
  a.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  return a;
}

// Fused when the head size allows (fused_attention.h), else per sequence: S = scale Q K^T for
// the query heads of each kv head in one strided-batched product (the kv head's K is shared:
// stride 0), the causal softmax of every head, O = P V.
void CudaKernels::attention_forward(float* out, float* probs, const float* q, const float* k, const float* v,
                                    const Index* cu_seqlens, Index num_seqs, Index heads, Index kv_heads,
                                    Index head_dim) const {
  if (num_seqs == 0) return;
  if (fused(head_dim, num_seqs)) {
    PooledBuffer device_cu;
    const auto a = fused_args(q, k, v, false, cu_seqlens, num_seqs, heads, kv_heads, head_dim, device_cu);
    cuda_detail::fused_attention_forward(a, out, probs, stream_);
    return;
  }
  const Index q_ld = heads * head_dim, kv_ld = kv_heads * head_dim, group = heads / kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  float* p = probs;
  for (Index s = 0; s < num_seqs; ++s) {
    const Index start = cu_seqlens[s], len = cu_seqlens[s + 1] - start;
    if (len == 0) continue;
    const Index square = len * len;
    for (Index g = 0; g < kv_heads; ++g) {
      gemm_batched(false, true, len, len, head_dim, scale, q + start * q_ld + g * group * head_dim, q_ld, head_dim,
                   k + start * kv_ld + g * head_dim, kv_ld, 0, 0.0f, p + g * group * square, len, square, group);
    }
    causal_softmax_kernel<<<dim3(static_cast<unsigned>(len), static_cast<unsigned>(heads)), kThreads, 0, stream_>>>(
        p, len, len, 0, square);
    SPIN_CUDA_CHECK_LAUNCH("attention softmax");
    for (Index g = 0; g < kv_heads; ++g) {
      gemm_batched(false, false, len, head_dim, len, 1.0f, p + g * group * square, len, square,
                   v + start * kv_ld + g * head_dim, kv_ld, 0, 0.0f, out + start * q_ld + g * group * head_dim, q_ld,
                   head_dim, group);
    }
    p += heads * square;
  }
}

void CudaKernels::attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                     const float* k, const float* v, const float* probs, const Index* cu_seqlens,
                                     Index num_seqs, Index heads, Index kv_heads, Index head_dim) const {
  if (num_seqs == 0) return;
  if (fused(head_dim, num_seqs)) {
    PooledBuffer device_cu;
    fused_backward(dq, dk, dv, dout, q, k, v, false, nullptr, probs, cu_seqlens, num_seqs, heads, kv_heads,
                   head_dim);
    return;
  }
  const Index q_ld = heads * head_dim, kv_ld = kv_heads * head_dim, group = heads / kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const Index rows = cu_seqlens[num_seqs] - cu_seqlens[0];
  const auto kv_bytes = static_cast<std::size_t>(rows * kv_ld) * sizeof(float);
  SPIN_CUDA_CHECK(cudaMemsetAsync(dk, 0, kv_bytes, stream_));
  SPIN_CUDA_CHECK(cudaMemsetAsync(dv, 0, kv_bytes, stream_));
  const Index most = longest(cu_seqlens, num_seqs);
  PooledBuffer scratch(allocator_, static_cast<std::size_t>(std::max<Index>(1, heads * most * most)) * sizeof(float));
  float* ds = scratch.as<float>();
  const float* p = probs;
  for (Index s = 0; s < num_seqs; ++s) {
    const Index start = cu_seqlens[s], len = cu_seqlens[s + 1] - start;
    if (len == 0) continue;
    const Index square = len * len;
    for (Index g = 0; g < kv_heads; ++g) {  // dP = dO V^T
      gemm_batched(false, true, len, len, head_dim, 1.0f, dout + start * q_ld + g * group * head_dim, q_ld, head_dim,
                   v + start * kv_ld + g * head_dim, kv_ld, 0, 0.0f, ds + g * group * square, len, square, group);
    }
    attention_ds_kernel<<<dim3(static_cast<unsigned>(len), static_cast<unsigned>(heads)), kThreads, 0, stream_>>>(
        ds, p, len);
    SPIN_CUDA_CHECK_LAUNCH("attention dS");
    for (Index g = 0; g < kv_heads; ++g) {  // dQ = scale dS K
      gemm_batched(false, false, len, head_dim, len, scale, ds + g * group * square, len, square,
                   k + start * kv_ld + g * head_dim, kv_ld, 0, 0.0f, dq + start * q_ld + g * group * head_dim, q_ld,
                   head_dim, group);
    }
    // dK += scale dS^T Q and dV += P^T dO, one query head at a time: the heads of a group add
    // into the same kv head.
    for (Index h = 0; h < heads; ++h) {
      const Index g = h / group;
      gemm(true, false, len, head_dim, len, scale, ds + h * square, len, q + start * q_ld + h * head_dim, q_ld, 1.0f,
           dk + start * kv_ld + g * head_dim, kv_ld);
      gemm(true, false, len, head_dim, len, 1.0f, p + h * square, len, dout + start * q_ld + h * head_dim, q_ld,
           1.0f, dv + start * kv_ld + g * head_dim, kv_ld);
    }
    p += heads * square;
  }
}

void CudaKernels::fused_backward(float* dq, float* dk, float* dv, const float* dout, const void* q, const void* k,
                                 const void* v, bool bf16, const void* out, const float* lse, const Index* cu_seqlens,
                                 Index num_seqs, Index heads, Index kv_heads, Index head_dim) const {
  PooledBuffer device_cu;
  const auto a = fused_args(q, k, v, bf16, cu_seqlens, num_seqs, heads, kv_heads, head_dim, device_cu);
  const Index rows = cu_seqlens[num_seqs];
  PooledBuffer delta(allocator_, static_cast<std::size_t>(std::max<Index>(1, rows * heads)) * sizeof(float));
  if (bf16 && tensor_cores(head_dim, num_seqs)) {
    cuda_detail::tensor_core_attention_backward(a, dq, dk, dv, dout, out, lse, delta.as<float>(), stream_);
  } else {
    cuda_detail::fused_attention_backward(a, dq, dk, dv, dout, lse, delta.as<float>(), stream_);
  }
}

PooledBuffer CudaKernels::widened(const std::uint16_t* x, Index n) const {
  PooledBuffer out(allocator_, static_cast<std::size_t>(std::max<Index>(1, n)) * sizeof(float));
  to_f32(out.as<float>(), x, n);
  return out;
}

// Mixed precision: the fused kernels (tensor-core or SIMT) read bf16 q, k, v and write a bf16
// output themselves; the cuBLAS path runs in float32 on widened copies.
void CudaKernels::attention_forward_bf16(std::uint16_t* out, float* saved, const std::uint16_t* q,
                                         const std::uint16_t* k, const std::uint16_t* v, const Index* cu_seqlens,
                                         Index num_seqs, Index heads, Index kv_heads, Index head_dim) const {
  if (num_seqs == 0) return;
  if (fused(head_dim, num_seqs)) {
    PooledBuffer device_cu;
    const auto a = fused_args(q, k, v, true, cu_seqlens, num_seqs, heads, kv_heads, head_dim, device_cu);
    if (tensor_cores(head_dim, num_seqs)) {
      cuda_detail::tensor_core_attention_forward(a, out, saved, stream_);
    } else {
      cuda_detail::fused_attention_forward(a, out, saved, stream_);
    }
    return;
  }
  const Index rows = cu_seqlens[num_seqs];
  const PooledBuffer q32 = widened(q, rows * heads * head_dim), k32 = widened(k, rows * kv_heads * head_dim),
                     v32 = widened(v, rows * kv_heads * head_dim);
  PooledBuffer o(allocator_, static_cast<std::size_t>(std::max<Index>(1, rows * heads * head_dim)) * sizeof(float));
  attention_forward(o.as<float>(), saved, q32.as<float>(), k32.as<float>(), v32.as<float>(), cu_seqlens, num_seqs,
                    heads, kv_heads, head_dim);
  to_bf16(out, o.as<float>(), rows * heads * head_dim);
}

void CudaKernels::attention_backward_bf16(float* dq, float* dk, float* dv, const float* dout, const std::uint16_t* q,
                                          const std::uint16_t* k, const std::uint16_t* v, const std::uint16_t* out,
                                          const float* saved, const Index* cu_seqlens, Index num_seqs, Index heads,
                                          Index kv_heads, Index head_dim) const {
  if (num_seqs == 0) return;
  if (fused(head_dim, num_seqs)) {
    fused_backward(dq, dk, dv, dout, q, k, v, true, out, saved, cu_seqlens, num_seqs, heads, kv_heads, head_dim);
    return;
  }
  const Index rows = cu_seqlens[num_seqs];
  const PooledBuffer q32 = widened(q, rows * heads * head_dim), k32 = widened(k, rows * kv_heads * head_dim),
                     v32 = widened(v, rows * kv_heads * head_dim);
  attention_backward(dq, dk, dv, dout, q32.as<float>(), k32.as<float>(), v32.as<float>(), saved, cu_seqlens, num_seqs,
                     heads, kv_heads, head_dim);
}

bool CudaKernels::fused_cached(void* out, const void* q, const void* k_cache, const void* v_cache, bool bf16,
                               const Index* row_begin, const Index* slots, const Index* first_position, Index runs,
                               Index capacity, Index heads, Index kv_heads, Index head_dim) const {
  if (!fused(head_dim, runs)) return false;
  // One launch for every run (decode batches are many short runs); the runs' shape arrays go up.
  std::vector<Index> host(static_cast<std::size_t>(3 * runs + 1));
  std::copy(row_begin, row_begin + runs + 1, host.begin());
  std::copy(slots, slots + runs, host.begin() + runs + 1);
  std::copy(first_position, first_position + runs, host.begin() + 2 * runs + 1);
  const PooledBuffer device_runs = upload_indices(host.data(), static_cast<Index>(host.size()));
  cuda_detail::FusedCachedArgs a;
  a.q = q, a.k_cache = k_cache, a.v_cache = v_cache, a.bf16 = bf16;
  a.runs = device_runs.as<long long>();
  a.num_runs = runs;
  a.longest_run = longest(row_begin, runs);
  a.capacity = capacity;
  a.heads = static_cast<int>(heads), a.kv_heads = static_cast<int>(kv_heads);
  a.head_dim = head_dim;
  a.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  cuda_detail::fused_cached_attention(a, out, stream_);
  return true;
}

// Mixed precision the fused kernel cannot take: q and each run's cached positions widened into
// float32 scratch, the float32 path on them, the output rounded.
void CudaKernels::cached_attention_forward_bf16(std::uint16_t* out, const std::uint16_t* q,
                                                const std::uint16_t* k_cache, const std::uint16_t* v_cache,
                                                const Index* row_begin, const Index* slots,
                                                const Index* first_position, Index runs, Index capacity, Index heads,
                                                Index kv_heads, Index head_dim) const {
  if (runs == 0) return;
  // Prefills -- runs at position 0: causal attention over their own rows, whose keys and values
  // sit at the start of their slots -- go to the tensor-core forward (reading K/V there, a
  // log-sum-exp scratch). A continuous batch puts the prompts it starts after the sequences it
  // decodes: those go to the fused kernel, in the same call.
  Index decoding = runs;
  while (decoding > 0 && first_position[decoding - 1] == 0) --decoding;
  const Index prefills = runs - decoding;
  if (prefills > 0 && tensor_cores(head_dim, prefills) && (decoding == 0 || fused(head_dim, decoding))) {
    if (decoding > 0) {
      fused_cached(out, q, k_cache, v_cache, true, row_begin, slots, first_position, decoding, capacity, heads,
                   kv_heads, head_dim);
    }
    const Index first_row = row_begin[decoding], q_ld = heads * head_dim;
    std::vector<Index> prefill_rows(static_cast<std::size_t>(prefills + 1)), starts(static_cast<std::size_t>(prefills));
    for (Index r = 0; r <= prefills; ++r) prefill_rows[static_cast<std::size_t>(r)] = row_begin[decoding + r] - first_row;
    for (Index r = 0; r < prefills; ++r) starts[static_cast<std::size_t>(r)] = slots[decoding + r] * capacity;
    PooledBuffer device_cu, lse(allocator_, static_cast<std::size_t>(std::max<Index>(1, prefill_rows.back() * heads)) *
                                                sizeof(float));
    auto a = fused_args(q + first_row * q_ld, k_cache, v_cache, true, prefill_rows.data(), prefills, heads, kv_heads,
                        head_dim, device_cu);
    const PooledBuffer device_starts = upload_indices(starts.data(), prefills);
    a.kv_starts = device_starts.as<long long>();
    cuda_detail::tensor_core_attention_forward(a, out + first_row * q_ld, lse.as<float>(), stream_);
    return;
  }
  if (fused_cached(out, q, k_cache, v_cache, true, row_begin, slots, first_position, runs, capacity, heads, kv_heads,
                   head_dim)) {
    return;
  }
  const Index kv_ld = kv_heads * head_dim, q_ld = heads * head_dim, rows = row_begin[runs];
  Index most_keys = 1;
  for (Index r = 0; r < runs; ++r) most_keys = std::max(most_keys, first_position[r] + row_begin[r + 1] - row_begin[r]);
  PooledBuffer k(allocator_, static_cast<std::size_t>(most_keys * kv_ld) * sizeof(float));
  PooledBuffer v(allocator_, static_cast<std::size_t>(most_keys * kv_ld) * sizeof(float));
  const PooledBuffer q32 = widened(q, rows * q_ld);
  PooledBuffer o(allocator_, static_cast<std::size_t>(std::max<Index>(1, rows * q_ld)) * sizeof(float));
  for (Index r = 0; r < runs; ++r) {
    const Index run = row_begin[r + 1] - row_begin[r], keys = first_position[r] + run;
    to_f32(k.as<float>(), k_cache + slots[r] * capacity * kv_ld, keys * kv_ld);
    to_f32(v.as<float>(), v_cache + slots[r] * capacity * kv_ld, keys * kv_ld);
    const Index run_rows[2] = {0, run}, slot0 = 0;
    cached_attention_forward(o.as<float>() + row_begin[r] * q_ld, q32.as<float>() + row_begin[r] * q_ld,
                             k.as<float>(), v.as<float>(), run_rows, &slot0, first_position + r, 1, keys, heads,
                             kv_heads, head_dim);
  }
  to_bf16(out, o.as<float>(), rows * q_ld);
}

void CudaKernels::cached_attention_forward(float* out, const float* q, const float* k_cache, const float* v_cache,
                                           const Index* row_begin, const Index* slots, const Index* first_position,
                                           Index runs, Index capacity, Index heads, Index kv_heads,
                                           Index head_dim) const {
  if (runs == 0) return;
  if (fused_cached(out, q, k_cache, v_cache, false, row_begin, slots, first_position, runs, capacity, heads, kv_heads,
                   head_dim)) {
    return;
  }
  const Index q_ld = heads * head_dim, kv_ld = kv_heads * head_dim, group = heads / kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  Index largest = 1;
  for (Index r = 0; r < runs; ++r) {
    const Index rows = row_begin[r + 1] - row_begin[r];
    largest = std::max(largest, heads * rows * (first_position[r] + rows));
  }
  PooledBuffer scratch(allocator_, static_cast<std::size_t>(largest) * sizeof(float));
  float* scores = scratch.as<float>();
  for (Index r = 0; r < runs; ++r) {
    const Index rows = row_begin[r + 1] - row_begin[r];
    if (rows == 0) continue;
    const Index first = first_position[r], keys = first + rows, block = rows * keys;
    const float* slot_k = k_cache + slots[r] * capacity * kv_ld;
    const float* slot_v = v_cache + slots[r] * capacity * kv_ld;
    for (Index g = 0; g < kv_heads; ++g) {
      gemm_batched(false, true, rows, keys, head_dim, scale, q + row_begin[r] * q_ld + g * group * head_dim, q_ld,
                   head_dim, slot_k + g * head_dim, kv_ld, 0, 0.0f, scores + g * group * block, keys, block, group);
    }
    causal_softmax_kernel<<<dim3(static_cast<unsigned>(rows), static_cast<unsigned>(heads)), kThreads, 0, stream_>>>(
        scores, rows, keys, first, block);
    SPIN_CUDA_CHECK_LAUNCH("cached attention softmax");
    for (Index g = 0; g < kv_heads; ++g) {
      gemm_batched(false, false, rows, head_dim, keys, 1.0f, scores + g * group * block, keys, block,
                   slot_v + g * head_dim, kv_ld, 0, 0.0f, out + row_begin[r] * q_ld + g * group * head_dim, q_ld,
                   head_dim, group);
    }
  }
}

void CudaKernels::scatter_rows_bf16(std::uint16_t* dst, const std::uint16_t* src, const Index* rows, Index n,
                                    Index width) const {
  if (n == 0) return;
  scatter_rows_kernel<<<blocks_for(n * width), kThreads, 0, stream_>>>(
      reinterpret_cast<__nv_bfloat16*>(dst), reinterpret_cast<const __nv_bfloat16*>(src),
      reinterpret_cast<const long long*>(rows), n, width);
  SPIN_CUDA_CHECK_LAUNCH("scatter_rows_bf16");
}

void CudaKernels::scatter_rows(float* dst, const float* src, const Index* rows, Index n, Index width) const {
  if (n == 0) return;
  scatter_rows_kernel<<<blocks_for(n * width), kThreads, 0, stream_>>>(
      dst, src, reinterpret_cast<const long long*>(rows), n, width);
  SPIN_CUDA_CHECK_LAUNCH("scatter_rows");
}

void CudaKernels::gather_rows(float* dst, const float* src, const Index* rows, Index n, Index width) const {
  if (n == 0) return;
  gather_rows_kernel<<<blocks_for(n * width), kThreads, 0, stream_>>>(dst, src, reinterpret_cast<const long long*>(rows),
                                                                     n, width);
  SPIN_CUDA_CHECK_LAUNCH("gather_rows");
}

void CudaKernels::swiglu_forward(float* out, const float* gate, const float* up, Index n) const {
  swiglu_forward_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(out, gate, up, n);
  SPIN_CUDA_CHECK_LAUNCH("swiglu_forward");
}

namespace {
const __nv_bfloat16* as_bf16(const std::uint16_t* p) { return reinterpret_cast<const __nv_bfloat16*>(p); }
}  // namespace

void CudaKernels::swiglu_forward_bf16(std::uint16_t* out, const std::uint16_t* gate, const std::uint16_t* up,
                                      Index n) const {
  swiglu_forward_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(reinterpret_cast<__nv_bfloat16*>(out),
                                                                 as_bf16(gate), as_bf16(up), n);
  SPIN_CUDA_CHECK_LAUNCH("swiglu_forward_bf16");
}

void CudaKernels::swiglu_backward_bf16(float* dgate, float* dup, const float* dout, const std::uint16_t* gate,
                                       const std::uint16_t* up, Index n) const {
  swiglu_backward_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(dgate, dup, dout, as_bf16(gate), as_bf16(up), n);
  SPIN_CUDA_CHECK_LAUNCH("swiglu_backward_bf16");
}

void CudaKernels::swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                                  Index n) const {
  swiglu_backward_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(dgate, dup, dout, gate, up, n);
  SPIN_CUDA_CHECK_LAUNCH("swiglu_backward");
}

void CudaKernels::logits_max(float* row_max, const float* logits, Index n, Index ld, Index valid) const {
  if (n == 0) return;
  logits_max_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream_>>>(row_max, logits, ld, valid);
  SPIN_CUDA_CHECK_LAUNCH("logits_max");
}

void CudaKernels::logits_sumexp_target(float* sumexp, float* target_logit, const float* logits, const float* row_max,
                                       const std::int32_t* targets, Index n, Index ld, Index valid,
                                       Index vocab_start) const {
  if (n == 0) return;
  logits_sumexp_target_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream_>>>(sumexp, target_logit, logits, row_max,
                                                                                  targets, ld, valid, vocab_start);
  SPIN_CUDA_CHECK_LAUNCH("logits_sumexp_target");
}

void CudaKernels::logprob_backward(float* dlogits, const float* logits, const float* lse, const std::int32_t* targets,
                                   const float* dlogprob, Index n, Index ld, Index valid, Index vocab_start) const {
  if (n == 0) return;
  logprob_backward_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream_>>>(dlogits, logits, lse, targets, dlogprob,
                                                                             ld, valid, vocab_start);
  SPIN_CUDA_CHECK_LAUNCH("logprob_backward");
}

void CudaKernels::logprob_from_sums(float* logprob, float* lse, const float* sums, const std::int32_t* targets,
                                    Index n) const {
  if (n == 0) return;
  logprob_from_sums_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(logprob, lse, sums, targets, n);
  SPIN_CUDA_CHECK_LAUNCH("logprob_from_sums");
}

void CudaKernels::add_inplace(float* y, const float* x, Index n) const {
  add_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(y, x, n);
  SPIN_CUDA_CHECK_LAUNCH("add_inplace");
}

void CudaKernels::add_bias(float* y, const float* bias, Index n, Index width) const {
  if (n * width == 0) return;
  bias_add_kernel<<<blocks_for(n * width), kThreads, 0, stream_>>>(y, y, bias, n, width);
  SPIN_CUDA_CHECK_LAUNCH("add_bias");
}

void CudaKernels::bias_backward(float* dbias, const float* dy, Index n, Index width) const {
  if (width == 0) return;
  bias_backward_kernel<<<blocks_for(width), kThreads, 0, stream_>>>(dbias, dy, n, width);
  SPIN_CUDA_CHECK_LAUNCH("bias_backward");
}

double CudaKernels::sum_squares(const float* x, const Range* ranges, Index count) const {
  long long n = 0;
  const std::vector<FlatRange> table = flat_ranges(ranges, count, n);
  if (n == 0) return 0.0;
  const PooledBuffer device_table = upload(table.data(), table.size() * sizeof(FlatRange));
  PooledBuffer total(allocator_, sizeof(double));
  SPIN_CUDA_CHECK(cudaMemsetAsync(total.data(), 0, sizeof(double), stream_));
  sum_squares_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(total.as<double>(), x, device_table.as<FlatRange>(),
                                                             static_cast<int>(table.size()), n);
  SPIN_CUDA_CHECK_LAUNCH("sum_squares");
  double host = 0.0;
  SPIN_CUDA_CHECK(cudaMemcpyAsync(&host, total.data(), sizeof(double), cudaMemcpyDeviceToHost, stream_));
  synchronize();
  return host;
}

void CudaKernels::adamw_update(float* param, std::uint16_t* param_bf16, const float* grad, float* m, float* v,
                               const AdamWRange* ranges, Index count, const AdamW& h) const {
  long long n = 0;
  const std::vector<FlatRange> table = flat_ranges(ranges, count, n);
  if (n == 0) return;
  const PooledBuffer device_table = upload(table.data(), table.size() * sizeof(FlatRange));
  adamw_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(
      param, reinterpret_cast<__nv_bfloat16*>(param_bf16), grad, m, v, device_table.as<FlatRange>(),
      static_cast<int>(table.size()), n, h.step_size(), h.decay(), h.beta1, h.beta2, h.eps, h.grad_scale,
      h.bias2_sqrt());
  SPIN_CUDA_CHECK_LAUNCH("adamw");
}

void CudaKernels::to_bf16(std::uint16_t* out, const float* in, Index n) const {
  to_bf16_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(reinterpret_cast<__nv_bfloat16*>(out), in, n);
  SPIN_CUDA_CHECK_LAUNCH("to_bf16");
}

void CudaKernels::linear_forward_bf16(float* y, const std::uint16_t* x, const std::uint16_t* w, Index n, Index in,
                                      Index out) const {
  gemm_bf16(false, true, n, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
}

void CudaKernels::linear_forward_bf16_out(std::uint16_t* y16, const std::uint16_t* x, const std::uint16_t* w,
                                          const float* bias, Index n, Index in, Index out) const {
  if (bias == nullptr) {
    gemm_bf16_to(false, true, n, out, in, 1.0f, x, in, w, in, 0.0f, y16, CUDA_R_16BF, out);
    return;
  }
  if (n == 0) return;
  PooledBuffer y(allocator_, static_cast<std::size_t>(n * out) * sizeof(float));
  linear_forward_bf16(y.as<float>(), x, w, n, in, out);
  bias_add_kernel<<<blocks_for(n * out), kThreads, 0, stream_>>>(reinterpret_cast<__nv_bfloat16*>(y16), y.as<float>(),
                                                                 bias, n, out);
  SPIN_CUDA_CHECK_LAUNCH("linear_forward_bf16_out bias");
}

void CudaKernels::linear_backward_bf16(float* dx, float* dw, const float* dy, std::uint16_t* dy16,
                                       const std::uint16_t* x, const std::uint16_t* w, Index n, Index in, Index out,
                                       bool accumulate_dx) const {
  to_bf16(dy16, dy, n * out);
  if (dx != nullptr) gemm_bf16(false, false, n, in, out, 1.0f, dy16, out, w, in, accumulate_dx ? 1.0f : 0.0f, dx, in);
  gemm_bf16(true, false, out, in, n, 1.0f, dy16, out, x, in, 1.0f, dw, in);
}

void CudaKernels::to_f32(float* out, const std::uint16_t* in, Index n) const {
  to_f32_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(out, reinterpret_cast<const __nv_bfloat16*>(in), n);
  SPIN_CUDA_CHECK_LAUNCH("to_f32");
}

void CudaKernels::gemm_bf16(bool trans_a, bool trans_b, Index m, Index n, Index k, float alpha, const std::uint16_t* a,
                            Index lda, const std::uint16_t* b, Index ldb, float beta, float* c, Index ldc) const {
  gemm_bf16_to(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, CUDA_R_32F, ldc);
}

void CudaKernels::gemm_bf16_to(bool trans_a, bool trans_b, Index m, Index n, Index k, float alpha,
                               const std::uint16_t* a, Index lda, const std::uint16_t* b, Index ldb, float beta,
                               void* c, cudaDataType c_type, Index ldc) const {
  if (m == 0 || n == 0) return;
  SPIN_CUBLAS_CHECK(cublasGemmEx(blas_, op(trans_b), op(trans_a), static_cast<int>(n), static_cast<int>(m),
                                 static_cast<int>(k), &alpha, b, CUDA_R_16BF, static_cast<int>(ldb), a, CUDA_R_16BF,
                                 static_cast<int>(lda), &beta, c, c_type, static_cast<int>(ldc), CUBLAS_COMPUTE_32F,
                                 CUBLAS_GEMM_DEFAULT));
}

}  // namespace spin::kernels
