// CudaKernels (cuda_kernels.h): float32 kernels, one thread block per row for row reductions
// (RMSNorm, softmax, log-softmax pieces), grid-stride loops for element-wise work, cuBLAS for
// every product. The arithmetic follows the CPU kernels line by line (kernels/cpu/), so each
// can be checked against its CPU twin (tests/gpu/).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include <cuda_bf16.h>

#include "core/watchdog.h"
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
    : stream_(cuda::compute_stream()),
      attention_(attention),
      allocator_(cuda::device_allocator()),
      // Ordered on the stream after earlier users of the pooled block; returns once the host array
      // is staged (pageable memory), so the caller may free it.
      recent_(allocator_, [stream = stream_](void* device, const void* host, std::size_t bytes) {
        SPIN_CUDA_CHECK(cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, stream));
      }) {
  cuda::use_current_device();
  SPIN_CUBLAS_CHECK(cublasCreate(&blas_));
  SPIN_CUBLAS_CHECK(cublasSetStream(blas_, stream_));
  // Plain float32 products (no TF32): the CUDA path must agree with the CPU reference.
  SPIN_CUBLAS_CHECK(cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH));
}

CudaKernels::~CudaKernels() {
  if (blas_ != nullptr) cublasDestroy(blas_);
}

void CudaKernels::synchronize() const {
  const watchdog::Wait waiting("cudaStreamSynchronize (the GPU's queued kernels and NCCL collectives)");
  SPIN_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

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
  if (dw != nullptr) gemm(true, false, out, in, n, 1.0f, dy, out, x, in, 1.0f, dw, in);
}

void CudaKernels::embedding_forward(float* out, const std::int32_t* ids, const float* table, Index n, Index hidden,
                                    Index vocab_start, Index rows, float scale) const {
  embedding_forward_kernel<<<blocks_for(n * hidden), kThreads, 0, stream_>>>(out, ids, table, n, hidden, vocab_start,
                                                                           rows, scale);
  SPIN_CUDA_CHECK_LAUNCH("embedding_forward");
}

void CudaKernels::embedding_backward(float* dtable, const std::int32_t* ids, const float* dout, Index n, Index hidden,
                                     Index vocab_start, Index rows, float scale) const {
  embedding_backward_kernel<<<blocks_for(n * hidden), kThreads, 0, stream_>>>(dtable, ids, dout, n, hidden,
                                                                            vocab_start, rows, scale);
  SPIN_CUDA_CHECK_LAUNCH("embedding_backward");
}

void CudaKernels::rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, Index n, Index dim,
                                  float eps, float w_offset) const {
  if (n == 0) return;
  rmsnorm_forward_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream_>>>(out, rstd, x, w, w_offset, dim, eps);
  SPIN_CUDA_CHECK_LAUNCH("rmsnorm_forward");
}

void CudaKernels::rmsnorm_forward_bf16(std::uint16_t* out, float* rstd, const float* x, const float* w, Index n,
                                       Index dim, float eps, float w_offset) const {
  if (n == 0) return;
  rmsnorm_forward_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream_>>>(reinterpret_cast<__nv_bfloat16*>(out),
                                                                            rstd, x, w, w_offset, dim, eps);
  SPIN_CUDA_CHECK_LAUNCH("rmsnorm_forward_bf16");
}

void CudaKernels::rmsnorm_forward_bf16_in(std::uint16_t* out, float* rstd, const std::uint16_t* x, const float* w,
                                          Index n, Index dim, float eps, float w_offset) const {
  if (n == 0) return;
  rmsnorm_forward_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream_>>>(
      reinterpret_cast<__nv_bfloat16*>(out), rstd, reinterpret_cast<const __nv_bfloat16*>(x), w, w_offset, dim, eps);
  SPIN_CUDA_CHECK_LAUNCH("rmsnorm_forward_bf16_in");
}

namespace {
// RMSNorm's backward over x of element type In: dx by rows, dw by columns over chunks of rows.
template <class In>
void launch_rmsnorm_backward(cudaStream_t stream, float* dx, float* dw, const float* dout, const In* x,
                             const float* w, float w_offset, const float* rstd, Index n, Index dim) {
  if (n == 0) return;
  rmsnorm_backward_dx_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(dx, dout, x, w, w_offset, rstd, dim);
  SPIN_CUDA_CHECK_LAUNCH("rmsnorm_backward (dx)");
  const dim3 grid(static_cast<unsigned>((dim + kThreads - 1) / kThreads),
                  static_cast<unsigned>((n + kRowsPerChunk - 1) / kRowsPerChunk));
  rmsnorm_backward_dw_kernel<<<grid, kThreads, 0, stream>>>(dw, dout, x, rstd, n, dim);
  SPIN_CUDA_CHECK_LAUNCH("rmsnorm_backward (dw)");
}
}  // namespace

void CudaKernels::rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w,
                                   const float* rstd, Index n, Index dim, float w_offset) const {
  launch_rmsnorm_backward(stream_, dx, dw, dout, x, w, w_offset, rstd, n, dim);
}

void CudaKernels::rmsnorm_backward_bf16_in(float* dx, float* dw, const float* dout, const std::uint16_t* x,
                                           const float* w, const float* rstd, Index n, Index dim, float w_offset) const {
  launch_rmsnorm_backward(stream_, dx, dw, dout, reinterpret_cast<const __nv_bfloat16*>(x), w, w_offset, rstd, n, dim);
}

namespace {

// LayerNorm over n rows of dim, w (and dw, db) of w_rows rows: row i takes row i % w_rows.
template <class Out>
void launch_layernorm_forward(cudaStream_t stream, Out* out, float* rstd, const float* x, const float* w,
                              const float* b, Index n, Index dim, float eps, Index w_rows) {
  if (n == 0) return;
  layernorm_forward_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(out, rstd, x, w, b, dim, eps, w_rows);
  SPIN_CUDA_CHECK_LAUNCH("layernorm_forward");
}

void launch_layernorm_backward(cudaStream_t stream, CachingAllocator& allocator, float* dx, float* dw, float* db,
                               const float* dout, const float* x, const float* w, const float* rstd, Index n, Index dim,
                               Index w_rows) {
  if (n == 0) return;
  // The rows' means, which the weight's gradient needs, from the dx kernel that forms them anyway.
  PooledBuffer means;
  if (dw != nullptr) means = PooledBuffer(allocator, static_cast<std::size_t>(n) * sizeof(float));
  layernorm_backward_dx_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(dx, means.as<float>(), dout, x, w,
                                                                                  rstd, dim, w_rows);
  SPIN_CUDA_CHECK_LAUNCH("layernorm_backward (dx)");
  if (dw == nullptr && db == nullptr) return;
  const dim3 grid(static_cast<unsigned>((w_rows * dim + kThreads - 1) / kThreads),
                  static_cast<unsigned>((n / w_rows + kRowsPerChunk - 1) / kRowsPerChunk));
  layernorm_backward_dw_kernel<<<grid, kThreads, 0, stream>>>(dw, db, dout, x, means.as<float>(), rstd, n, dim, w_rows);
  SPIN_CUDA_CHECK_LAUNCH("layernorm_backward (dw, db)");
}

}  // namespace

void CudaKernels::layernorm_forward(float* out, float* rstd, const float* x, const float* w, const float* b, Index n,
                                    Index dim, float eps) const {
  launch_layernorm_forward(stream_, out, rstd, x, w, b, n, dim, eps, 1);
}

void CudaKernels::layernorm_forward_bf16(std::uint16_t* out, float* rstd, const float* x, const float* w,
                                         const float* b, Index n, Index dim, float eps) const {
  launch_layernorm_forward(stream_, reinterpret_cast<__nv_bfloat16*>(out), rstd, x, w, b, n, dim, eps, 1);
}

void CudaKernels::layernorm_backward(float* dx, float* dw, float* db, const float* dout, const float* x, const float* w,
                                     const float* rstd, Index n, Index dim) const {
  launch_layernorm_backward(stream_, allocator_, dx, dw, db, dout, x, w, rstd, n, dim, 1);
}

void CudaKernels::head_layernorm_forward(float* out, float* rstd, const float* x, const float* w, Index n, Index heads,
                                         Index dim, float eps) const {
  launch_layernorm_forward(stream_, out, rstd, x, w, nullptr, n * heads, dim, eps, heads);
}

void CudaKernels::head_layernorm_forward_bf16(std::uint16_t* out, float* rstd, const float* x, const float* w, Index n,
                                              Index heads, Index dim, float eps) const {
  launch_layernorm_forward(stream_, reinterpret_cast<__nv_bfloat16*>(out), rstd, x, w, nullptr, n * heads, dim, eps,
                           heads);
}

void CudaKernels::head_layernorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w,
                                          const float* rstd, Index n, Index heads, Index dim) const {
  launch_layernorm_backward(stream_, allocator_, dx, dw, nullptr, dout, x, w, rstd, n * heads, dim, heads);
}

void CudaKernels::row_dot(float* out, const float* a, const float* b, const float* w, Index n, Index dim) const {
  if (n == 0) return;
  row_dot_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream_>>>(out, a, b, w, dim);
  SPIN_CUDA_CHECK_LAUNCH("row_dot");
}

void CudaKernels::rmsnorm_forward_from_sums(float* out, float* rstd, const float* x, const float* w, const float* sums,
                                            Index n, Index dim, Index total, float eps) const {
  if (n == 0) return;
  rmsnorm_from_sums_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream_>>>(out, rstd, x, w, sums, dim, total, eps);
  SPIN_CUDA_CHECK_LAUNCH("rmsnorm_forward_from_sums");
}

void CudaKernels::rmsnorm_forward_from_sums_bf16(std::uint16_t* out, float* rstd, const float* x, const float* w,
                                                 const float* sums, Index n, Index dim, Index total, float eps) const {
  if (n == 0) return;
  rmsnorm_from_sums_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream_>>>(reinterpret_cast<__nv_bfloat16*>(out),
                                                                               rstd, x, w, sums, dim, total, eps);
  SPIN_CUDA_CHECK_LAUNCH("rmsnorm_forward_from_sums_bf16");
}

void CudaKernels::rmsnorm_backward_from_dots(float* dx, float* dw, const float* dout, const float* x, const float* w,
                                             const float* rstd, const float* dots, Index n, Index dim,
                                             Index total) const {
  if (n == 0) return;
  rmsnorm_from_dots_dx_kernel<<<blocks_for(n * dim), kThreads, 0, stream_>>>(dx, dout, x, w, rstd, dots, n, dim, total);
  SPIN_CUDA_CHECK_LAUNCH("rmsnorm_backward_from_dots (dx)");
  if (dw == nullptr) return;
  const dim3 grid(static_cast<unsigned>((dim + kThreads - 1) / kThreads),
                  static_cast<unsigned>((n + kRowsPerChunk - 1) / kRowsPerChunk));
  rmsnorm_backward_dw_kernel<<<grid, kThreads, 0, stream_>>>(dw, dout, x, rstd, n, dim);
  SPIN_CUDA_CHECK_LAUNCH("rmsnorm_backward_from_dots (dw)");
}

namespace {
// rope_kernel's launch over q's heads and k's (none: k null); `launch` names it in an error.
template <class T>
void launch_rope(cudaStream_t stream, T* q, T* k, const std::int32_t* positions, const float* cos, const float* sin,
                 Index n, Index heads, Index kv_heads, Index head_dim, Index rotary_dim, RopePairs pairs, float sign,
                 const char* launch) {
  if (n == 0) return;
  rope_kernel<<<blocks_for(n * (heads + kv_heads) * (rotary_dim / 2)), kThreads, 0, stream>>>(
      q, k, positions, cos, sin, n, heads, kv_heads, head_dim, rotary_dim, pairs == RopePairs::Interleaved, sign);
  cuda::check(cudaGetLastError(), launch, __FILE__, __LINE__);
}
__nv_bfloat16* bf16(std::uint16_t* p) { return reinterpret_cast<__nv_bfloat16*>(p); }
const __nv_bfloat16* bf16(const std::uint16_t* p) { return reinterpret_cast<const __nv_bfloat16*>(p); }
}  // namespace

void CudaKernels::rope_forward(float* x, const std::int32_t* positions, const float* cos, const float* sin, Index n,
                               Index heads, Index head_dim, Index rotary_dim, RopePairs pairs) const {
  launch_rope<float>(stream_, x, nullptr, positions, cos, sin, n, heads, 0, head_dim, rotary_dim, pairs, 1.0f,
                     "rope_forward launch");
}

void CudaKernels::rope_forward_bf16(std::uint16_t* x, const std::int32_t* positions, const float* cos, const float* sin,
                                    Index n, Index heads, Index head_dim, Index rotary_dim, RopePairs pairs) const {
  launch_rope<__nv_bfloat16>(stream_, bf16(x), nullptr, positions, cos, sin, n, heads, 0, head_dim, rotary_dim, pairs,
                             1.0f, "rope_forward_bf16 launch");
}

void CudaKernels::rope_backward(float* dx, const std::int32_t* positions, const float* cos, const float* sin, Index n,
                                Index heads, Index head_dim, Index rotary_dim, RopePairs pairs) const {
  launch_rope<float>(stream_, dx, nullptr, positions, cos, sin, n, heads, 0, head_dim, rotary_dim, pairs, -1.0f,
                     "rope_backward launch");
}

void CudaKernels::rope_qk_forward(float* q, float* k, const std::int32_t* positions, const float* cos, const float* sin,
                                  Index n, Index heads, Index kv_heads, Index head_dim, Index rotary_dim,
                                  RopePairs pairs) const {
  launch_rope(stream_, q, k, positions, cos, sin, n, heads, kv_heads, head_dim, rotary_dim, pairs, 1.0f,
              "rope_qk_forward launch");
}

void CudaKernels::rope_qk_forward_bf16(std::uint16_t* q, std::uint16_t* k, const std::int32_t* positions,
                                       const float* cos, const float* sin, Index n, Index heads, Index kv_heads,
                                       Index head_dim, Index rotary_dim, RopePairs pairs) const {
  launch_rope(stream_, bf16(q), bf16(k), positions, cos, sin, n, heads, kv_heads, head_dim, rotary_dim, pairs, 1.0f,
              "rope_qk_forward_bf16 launch");
}

const void* CudaKernels::upload(const void* host, std::size_t bytes) const { return recent_.device_copy(host, bytes); }

const long long* CudaKernels::upload_indices(const Index* host, Index count) const {
  static_assert(sizeof(Index) == sizeof(long long));
  return static_cast<const long long*>(upload(host, static_cast<std::size_t>(count) * sizeof(Index)));
}

namespace {
// scatter_rows_kernel's launch: src into dst, and src2 into dst2 when given.
template <class T>
void launch_scatter(cudaStream_t stream, T* dst, const T* src, T* dst2, const T* src2, const Index* rows, Index n,
                    Index width, const char* launch) {
  if (n == 0) return;
  scatter_rows_kernel<<<blocks_for((dst2 == nullptr ? 1 : 2) * n * width), kThreads, 0, stream>>>(
      dst, src, dst2, src2, reinterpret_cast<const long long*>(rows), n, width);
  cuda::check(cudaGetLastError(), launch, __FILE__, __LINE__);
}
}  // namespace

void CudaKernels::scatter_rows_bf16(std::uint16_t* dst, const std::uint16_t* src, const Index* rows, Index n,
                                    Index width) const {
  launch_scatter<__nv_bfloat16>(stream_, bf16(dst), bf16(src), nullptr, nullptr, rows, n, width,
                                "scatter_rows_bf16 launch");
}

void CudaKernels::scatter_rows(float* dst, const float* src, const Index* rows, Index n, Index width) const {
  launch_scatter<float>(stream_, dst, src, nullptr, nullptr, rows, n, width, "scatter_rows launch");
}

void CudaKernels::scatter_kv_rows(float* keys, float* values, const float* k, const float* v, const Index* rows,
                                  Index n, Index width) const {
  launch_scatter(stream_, keys, k, values, v, rows, n, width, "scatter_kv_rows launch");
}

void CudaKernels::scatter_kv_rows_bf16(std::uint16_t* keys, std::uint16_t* values, const std::uint16_t* k,
                                       const std::uint16_t* v, const Index* rows, Index n, Index width) const {
  launch_scatter(stream_, bf16(keys), bf16(k), bf16(values), bf16(v), rows, n, width, "scatter_kv_rows_bf16 launch");
}

void CudaKernels::gather_rows(float* dst, const float* src, const Index* rows, Index n, Index width) const {
  if (n == 0) return;
  gather_rows_kernel<<<blocks_for(n * width), kThreads, 0, stream_>>>(dst, src, reinterpret_cast<const long long*>(rows),
                                                                     n, width);
  SPIN_CUDA_CHECK_LAUNCH("gather_rows");
}

void CudaKernels::gather_rows_bf16(std::uint16_t* dst, const std::uint16_t* src, const Index* rows, Index n,
                                   Index width) const {
  if (n == 0) return;
  gather_rows_kernel<<<blocks_for(n * width), kThreads, 0, stream_>>>(
      reinterpret_cast<__nv_bfloat16*>(dst), reinterpret_cast<const __nv_bfloat16*>(src),
      reinterpret_cast<const long long*>(rows), n, width);
  SPIN_CUDA_CHECK_LAUNCH("gather_rows_bf16");
}

void CudaKernels::moe_combine(float* out, const float* y, const Index* slots, const float* weights, Index n, Index k,
                              Index width) const {
  if (n == 0) return;
  moe_combine_kernel<<<blocks_for(n * width), kThreads, 0, stream_>>>(out, y, reinterpret_cast<const long long*>(slots),
                                                                      weights, n, k, width);
  SPIN_CUDA_CHECK_LAUNCH("moe_combine");
}

void CudaKernels::moe_combine_backward(float* dy, float* dweights, const float* dout, const float* y,
                                       const Index* slots, const float* weights, Index n, Index k, Index width) const {
  if (n == 0) return;
  const auto* s = reinterpret_cast<const long long*>(slots);
  moe_combine_dy_kernel<<<blocks_for(n * k * width), kThreads, 0, stream_>>>(dy, dout, s, weights, n, k, width);
  SPIN_CUDA_CHECK_LAUNCH("moe_combine_backward (dy)");
  moe_combine_dweights_kernel<<<static_cast<unsigned>(n * k), kThreads, 0, stream_>>>(dweights, dout, y, s, k, width);
  SPIN_CUDA_CHECK_LAUNCH("moe_combine_backward (dweights)");
}

void CudaKernels::glu_forward(float* out, const float* gate, const float* up, Index n, Activation act) const {
  glu_forward_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(out, gate, up, n, act);
  SPIN_CUDA_CHECK_LAUNCH("glu_forward");
}

namespace {
const __nv_bfloat16* as_bf16(const std::uint16_t* p) { return reinterpret_cast<const __nv_bfloat16*>(p); }
}  // namespace

void CudaKernels::glu_forward_bf16(std::uint16_t* out, const std::uint16_t* gate, const std::uint16_t* up,
                                   Index n, Activation act) const {
  glu_forward_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(reinterpret_cast<__nv_bfloat16*>(out),
                                                              as_bf16(gate), as_bf16(up), n, act);
  SPIN_CUDA_CHECK_LAUNCH("glu_forward_bf16");
}

void CudaKernels::glu_backward_bf16(float* dgate, float* dup, const float* dout, const std::uint16_t* gate,
                                    const std::uint16_t* up, Index n, Activation act) const {
  glu_backward_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(dgate, dup, dout, as_bf16(gate), as_bf16(up), n, act);
  SPIN_CUDA_CHECK_LAUNCH("glu_backward_bf16");
}

void CudaKernels::glu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                               Index n, Activation act) const {
  glu_backward_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(dgate, dup, dout, gate, up, n, act);
  SPIN_CUDA_CHECK_LAUNCH("glu_backward");
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
                                   const float* dlogprob, Index n, Index ld, Index valid, Index vocab_start,
                                   float softcap) const {
  if (n == 0) return;
  logprob_backward_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream_>>>(dlogits, logits, lse, targets, dlogprob,
                                                                             ld, valid, vocab_start, softcap);
  SPIN_CUDA_CHECK_LAUNCH("logprob_backward");
}

void CudaKernels::softcap_forward(float* x, Index n, float cap) const {
  if (n == 0) return;
  softcap_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(x, n, cap);
  SPIN_CUDA_CHECK_LAUNCH("softcap_forward");
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

void CudaKernels::copy_2d(void* dst, Index dst_pitch, const void* src, Index src_pitch, Index width, Index rows) const {
  if (rows == 0 || width == 0) return;
  SPIN_CUDA_CHECK(cudaMemcpy2DAsync(dst, static_cast<std::size_t>(dst_pitch), src, static_cast<std::size_t>(src_pitch),
                                    static_cast<std::size_t>(width), static_cast<std::size_t>(rows),
                                    cudaMemcpyDeviceToDevice, stream_));
}

void CudaKernels::add_2d(float* dst, Index dst_ld, const float* src, Index src_ld, Index rows, Index cols) const {
  if (rows == 0 || cols == 0) return;
  add_2d_kernel<<<blocks_for(rows * cols), kThreads, 0, stream_>>>(dst, dst_ld, src, src_ld, rows, cols);
  SPIN_CUDA_CHECK_LAUNCH("add_2d");
}

void CudaKernels::scale(float* y, const float* x, float alpha, Index n) const {
  if (n == 0) return;
  scale_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(y, x, alpha, n);
  SPIN_CUDA_CHECK_LAUNCH("scale");
}

void CudaKernels::clamp(float* out, const float* x, Index n, float limit) const {
  if (n == 0) return;
  clamp_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(out, x, n, limit);
  SPIN_CUDA_CHECK_LAUNCH("clamp");
}

void CudaKernels::clamp_bf16(std::uint16_t* out, const std::uint16_t* x, Index n, float limit) const {
  if (n == 0) return;
  clamp_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(reinterpret_cast<__nv_bfloat16*>(out),
                                                        reinterpret_cast<const __nv_bfloat16*>(x), n, limit);
  SPIN_CUDA_CHECK_LAUNCH("clamp_bf16");
}

void CudaKernels::clamp_backward(float* dx, const float* dy, const float* x, Index n, float limit) const {
  if (n == 0) return;
  clamp_backward_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(dx, dy, x, n, limit);
  SPIN_CUDA_CHECK_LAUNCH("clamp_backward");
}

void CudaKernels::clamp_backward_bf16_in(float* dx, const float* dy, const std::uint16_t* x, Index n,
                                         float limit) const {
  if (n == 0) return;
  clamp_backward_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(dx, dy, reinterpret_cast<const __nv_bfloat16*>(x), n,
                                                                 limit);
  SPIN_CUDA_CHECK_LAUNCH("clamp_backward_bf16_in");
}

void CudaKernels::dropout(float* y, const float* x, Index rows, Index cols, const DropoutMask& mask,
                          bool accumulate) const {
  if (rows * cols == 0) return;
  dropout_kernel<<<blocks_for(rows * dropout_groups(mask.col_offset, cols)), kThreads, 0, stream_>>>(
      y, x, reinterpret_cast<const long long*>(mask.row_keys), rows, cols, mask.col_offset, mask.seed, mask.site,
      mask.p, mask.scale(), accumulate);
  SPIN_CUDA_CHECK_LAUNCH("dropout");
}

void CudaKernels::dropout_bf16(std::uint16_t* y, const std::uint16_t* x, Index rows, Index cols,
                               const DropoutMask& mask) const {
  if (rows * cols == 0) return;
  dropout_kernel<<<blocks_for(rows * dropout_groups(mask.col_offset, cols)), kThreads, 0, stream_>>>(
      reinterpret_cast<__nv_bfloat16*>(y), reinterpret_cast<const __nv_bfloat16*>(x),
      reinterpret_cast<const long long*>(mask.row_keys), rows, cols, mask.col_offset, mask.seed, mask.site, mask.p,
      mask.scale(), false);
  SPIN_CUDA_CHECK_LAUNCH("dropout_bf16");
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
  const auto* device_table = static_cast<const FlatRange*>(upload(table.data(), table.size() * sizeof(FlatRange)));
  PooledBuffer total(allocator_, sizeof(double));
  SPIN_CUDA_CHECK(cudaMemsetAsync(total.data(), 0, sizeof(double), stream_));
  sum_squares_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(total.as<double>(), x, device_table,
                                                              static_cast<int>(table.size()), n);
  SPIN_CUDA_CHECK_LAUNCH("sum_squares");
  double host = 0.0;
  SPIN_CUDA_CHECK(cudaMemcpyAsync(&host, total.data(), sizeof(double), cudaMemcpyDeviceToHost, stream_));
  synchronize();
  return host;
}

void CudaKernels::adamw_update(float* param, std::uint16_t* param_bf16, const float* grad, float* m, float* v,
                               const UpdateRange* ranges, Index count, const AdamW& h) const {
  long long n = 0;
  const std::vector<FlatRange> table = flat_ranges(ranges, count, n);
  if (n == 0) return;
  const auto* device_table = static_cast<const FlatRange*>(upload(table.data(), table.size() * sizeof(FlatRange)));
  adamw_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(
      param, reinterpret_cast<__nv_bfloat16*>(param_bf16), grad, m, v, device_table, static_cast<int>(table.size()), n,
      h.step_size(), h.decay(), h.beta1, h.beta2, h.eps, h.grad_scale, h.bias2_sqrt());
  SPIN_CUDA_CHECK_LAUNCH("adamw");
}

void CudaKernels::rmsprop_update(float* param, std::uint16_t* param_bf16, const float* grad, float* v,
                                 const UpdateRange* ranges, Index count, const RmsProp& h) const {
  long long n = 0;
  const std::vector<FlatRange> table = flat_ranges(ranges, count, n);
  if (n == 0) return;
  const auto* device_table = static_cast<const FlatRange*>(upload(table.data(), table.size() * sizeof(FlatRange)));
  rmsprop_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(param, reinterpret_cast<__nv_bfloat16*>(param_bf16), grad, v,
                                                          device_table, static_cast<int>(table.size()), n, h.lr,
                                                          h.alpha, h.eps, h.weight_decay, h.grad_scale);
  SPIN_CUDA_CHECK_LAUNCH("rmsprop");
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
  if (dw != nullptr) gemm_bf16(true, false, out, in, n, 1.0f, dy16, out, x, in, 1.0f, dw, in);
}

void CudaKernels::from_bf16(float* out, const std::uint16_t* in, Index n) const {
  to_f32_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(out, reinterpret_cast<const __nv_bfloat16*>(in), n);
  SPIN_CUDA_CHECK_LAUNCH("from_bf16");
}

void CudaKernels::gemm_bf16(bool trans_a, bool trans_b, Index m, Index n, Index k, float alpha, const std::uint16_t* a,
                            Index lda, const std::uint16_t* b, Index ldb, float beta, float* c, Index ldc) const {
  gemm_bf16_to(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, CUDA_R_32F, ldc);
}

void CudaKernels::gemm_bf16(bool trans_a, bool trans_b, Index m, Index n, Index k, float alpha,
                            const std::uint16_t* a, Index lda, const std::uint16_t* b, Index ldb, float beta,
                            std::uint16_t* c, Index ldc) const {
  gemm_bf16_to(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, CUDA_R_16BF, ldc);
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
