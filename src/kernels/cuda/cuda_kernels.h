// CudaKernels: the Kernels interface (kernels/kernels.h) on one GPU: cuBLAS for every matrix
// product (float32 with TF32 off, so results follow the CPU reference to float32 rounding, or
// bf16 operands with float32 accumulation for mixed precision), hand-written kernels for the
// rest, attention fused (FlashAttention; on tensor cores for bf16) or as cuBLAS products per
// (sequence, kv head) around a causal softmax kernel.
//
// Pointers: every float and int32 buffer, and the per-row index array of scatter_rows, are
// device memory; the per-sequence shape arrays that decide the launches (cu_seqlens, row_begin,
// slots, first_position) and the optimizer kernels' ranges are host memory. Work is queued on the process's one compute stream;
// scratch comes from the caching allocator.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "core/caching_allocator.h"
#include "core/recent_uploads.h"
#include "kernels/cuda/fused_attention.h"
#include "kernels/kernels.h"

namespace spin::kernels {

class CudaKernels final : public Kernels {
 public:
  // The attention kernels, fastest first; each takes what it can and leaves the rest to the next:
  //   TensorCores  bf16 q, k, v at head_dim 64, 128 or 256: FlashAttention-2 on WMMA tiles
  //                (tensor_core_attention.cu);
  //   Fused        head_dim 32, 64, 96, 128, 192 or 256: FlashAttention's algorithm in float32 SIMT
  //                arithmetic (fused_attention.cu);
  //   Cublas       any shape: cuBLAS products around a softmax kernel, keeping the
  //                probabilities.
  // A slower choice caps the path (the tests compare them).
  enum class Attention { TensorCores, Fused, Cublas };

  // On the current device and the process's compute stream (cuda::compute_stream()); makes
  // Device::Cuda tensors usable (cuda::use_current_device).
  explicit CudaKernels(Attention attention = Attention::TensorCores);
  ~CudaKernels() override;
  CudaKernels(const CudaKernels&) = delete;
  CudaKernels& operator=(const CudaKernels&) = delete;

  Device device() const override { return Device::Cuda; }
  cudaStream_t stream() const { return stream_; }
  void synchronize() const override;

  void gemm(bool trans_a, bool trans_b, Index m, Index n, Index k, float alpha, const float* a, Index lda,
            const float* b, Index ldb, float beta, float* c, Index ldc) const override;
  void linear_forward(float* y, const float* x, const float* w, Index n, Index in, Index out) const override;
  void linear_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, Index n, Index in,
                       Index out, bool accumulate_dx) const override;
  void embedding_forward(float* out, const std::int32_t* ids, const float* table, Index n, Index hidden,
                         Index vocab_start, Index rows, float scale) const override;
  void embedding_backward(float* dtable, const std::int32_t* ids, const float* dout, Index n, Index hidden,
                          Index vocab_start, Index rows, float scale) const override;
  void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, Index n, Index dim,
                       float eps, float w_offset) const override;
  void rmsnorm_forward_bf16_in(std::uint16_t* out, float* rstd, const std::uint16_t* x, const float* w, Index n,
                               Index dim, float eps, float w_offset) const override;
  void rmsnorm_backward_bf16_in(float* dx, float* dw, const float* dout, const std::uint16_t* x, const float* w,
                                const float* rstd, Index n, Index dim, float w_offset) const override;
  void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd,
                        Index n, Index dim, float w_offset) const override;
  void row_dot(float* out, const float* a, const float* b, const float* w, Index n, Index dim) const override;
  void rmsnorm_forward_from_sums(float* out, float* rstd, const float* x, const float* w, const float* sums, Index n,
                                 Index dim, Index total, float eps) const override;
  void rmsnorm_forward_from_sums_bf16(std::uint16_t* out, float* rstd, const float* x, const float* w,
                                      const float* sums, Index n, Index dim, Index total, float eps) const override;
  void rmsnorm_backward_from_dots(float* dx, float* dw, const float* dout, const float* x, const float* w,
                                  const float* rstd, const float* dots, Index n, Index dim, Index total) const override;
  void layernorm_forward(float* out, float* rstd, const float* x, const float* w, const float* b, Index n, Index dim,
                         float eps) const override;
  void layernorm_forward_bf16(std::uint16_t* out, float* rstd, const float* x, const float* w, const float* b, Index n,
                              Index dim, float eps) const override;
  void layernorm_backward(float* dx, float* dw, float* db, const float* dout, const float* x, const float* w,
                          const float* rstd, Index n, Index dim) const override;
  void head_layernorm_forward(float* out, float* rstd, const float* x, const float* w, Index n, Index heads, Index dim,
                              float eps) const override;
  void head_layernorm_forward_bf16(std::uint16_t* out, float* rstd, const float* x, const float* w, Index n,
                                   Index heads, Index dim, float eps) const override;
  void head_layernorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w,
                               const float* rstd, Index n, Index heads, Index dim) const override;
  void rope_forward(float* x, const std::int32_t* positions, const float* cos, const float* sin, Index n, Index heads,
                    Index head_dim, Index rotary_dim, RopePairs pairs) const override;
  void rope_backward(float* dx, const std::int32_t* positions, const float* cos, const float* sin, Index n, Index heads,
                     Index head_dim, Index rotary_dim, RopePairs pairs) const override;
  void attention_forward(float* out, float* probs, const float* q, const float* k, const float* v,
                         const Index* cu_seqlens, Index num_seqs, Index heads, Index kv_heads,
                         Index head_dim, AttentionScores scores) const override;
  Index attention_saved_size(const Index* cu_seqlens, Index num_seqs, Index heads, Index head_dim) const override;
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                          const float* v, const float* probs, const Index* cu_seqlens, Index num_seqs, Index heads,
                          Index kv_heads, Index head_dim, AttentionScores scores) const override;
  void cached_attention_forward(float* out, const float* q, const float* k_cache, const float* v_cache,
                                const Index* row_begin, const Index* slots, const Index* first_position, Index runs,
                                Index capacity, Index heads, Index kv_heads, Index head_dim,
                                AttentionScores scores) const override;
  void scatter_rows(float* dst, const float* src, const Index* rows, Index n, Index width) const override;
  void scatter_kv_rows(float* keys, float* values, const float* k, const float* v, const Index* rows, Index n,
                       Index width) const override;
  void scatter_kv_rows_bf16(std::uint16_t* keys, std::uint16_t* values, const std::uint16_t* k, const std::uint16_t* v,
                            const Index* rows, Index n, Index width) const override;
  void rope_qk_forward(float* q, float* k, const std::int32_t* positions, const float* cos, const float* sin, Index n,
                       Index heads, Index kv_heads, Index head_dim, Index rotary_dim, RopePairs pairs) const override;
  void rope_qk_forward_bf16(std::uint16_t* q, std::uint16_t* k, const std::int32_t* positions, const float* cos,
                            const float* sin, Index n, Index heads, Index kv_heads, Index head_dim, Index rotary_dim,
                            RopePairs pairs) const override;
  void cached_attention_forward_bf16(std::uint16_t* out, const std::uint16_t* q, const std::uint16_t* k_cache,
                                     const std::uint16_t* v_cache, const Index* row_begin, const Index* slots,
                                     const Index* first_position, Index runs, Index capacity, Index heads,
                                     Index kv_heads, Index head_dim, AttentionScores scores) const override;
  void scatter_rows_bf16(std::uint16_t* dst, const std::uint16_t* src, const Index* rows, Index n,
                         Index width) const override;
  void rope_forward_bf16(std::uint16_t* x, const std::int32_t* positions, const float* cos, const float* sin, Index n,
                         Index heads, Index head_dim, Index rotary_dim, RopePairs pairs) const override;
  void attention_forward_bf16(std::uint16_t* out, float* saved, const std::uint16_t* q, const std::uint16_t* k,
                              const std::uint16_t* v, const Index* cu_seqlens, Index num_seqs, Index heads,
                              Index kv_heads, Index head_dim, AttentionScores scores) const override;
  void attention_backward_bf16(float* dq, float* dk, float* dv, const float* dout, const std::uint16_t* q,
                               const std::uint16_t* k, const std::uint16_t* v, const std::uint16_t* out,
                               const float* saved, const Index* cu_seqlens, Index num_seqs, Index heads,
                               Index kv_heads, Index head_dim, AttentionScores scores) const override;
  void gather_rows(float* dst, const float* src, const Index* rows, Index n, Index width) const override;
  void gather_rows_bf16(std::uint16_t* dst, const std::uint16_t* src, const Index* rows, Index n,
                        Index width) const override;
  void moe_combine(float* out, const float* y, const Index* slots, const float* weights, Index n, Index k,
                   Index width) const override;
  void moe_combine_backward(float* dy, float* dweights, const float* dout, const float* y, const Index* slots,
                            const float* weights, Index n, Index k, Index width) const override;
  void glu_forward(float* out, const float* gate, const float* up, Index n, Activation act) const override;
  void glu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                    Index n, Activation act) const override;
  void logits_max(float* row_max, const float* logits, Index n, Index ld, Index valid) const override;
  void logits_sumexp_target(float* sumexp, float* target_logit, const float* logits, const float* row_max,
                            const std::int32_t* targets, Index n, Index ld, Index valid,
                            Index vocab_start) const override;
  void logprob_backward(float* dlogits, const float* logits, const float* lse, const std::int32_t* targets,
                        const float* dlogprob, Index n, Index ld, Index valid, Index vocab_start,
                        float softcap) const override;
  void softcap_forward(float* x, Index n, float cap) const override;
  void logprob_from_sums(float* logprob, float* lse, const float* sums, const std::int32_t* targets,
                         Index n) const override;
  void add_inplace(float* y, const float* x, Index n) const override;
  void copy_2d(void* dst, Index dst_pitch, const void* src, Index src_pitch, Index width, Index rows) const override;
  void add_2d(float* dst, Index dst_ld, const float* src, Index src_ld, Index rows, Index cols) const override;
  void scale(float* y, const float* x, float alpha, Index n) const override;
  void clamp(float* out, const float* x, Index n, float limit) const override;
  void clamp_bf16(std::uint16_t* out, const std::uint16_t* x, Index n, float limit) const override;
  void clamp_backward(float* dx, const float* dy, const float* x, Index n, float limit) const override;
  void clamp_backward_bf16_in(float* dx, const float* dy, const std::uint16_t* x, Index n, float limit) const override;
  void dropout(float* y, const float* x, Index rows, Index cols, const DropoutMask& mask,
               bool accumulate) const override;
  void dropout_bf16(std::uint16_t* y, const std::uint16_t* x, Index rows, Index cols,
                    const DropoutMask& mask) const override;
  void add_bias(float* y, const float* bias, Index n, Index width) const override;
  void bias_backward(float* dbias, const float* dy, Index n, Index width) const override;
  // One launch over every range (a table of them uploaded first); sum_squares synchronises.
  double sum_squares(const float* x, const Range* ranges, Index count) const override;
  void adamw_update(float* param, std::uint16_t* param_bf16, const float* grad, float* m, float* v,
                    const UpdateRange* ranges, Index count, const AdamW& h) const override;
  void rmsprop_update(float* param, std::uint16_t* param_bf16, const float* grad, float* v,
                      const UpdateRange* ranges, Index count, const RmsProp& h) const override;
  // One block per row; every array argument is device memory.
  void sampling_logits(float* z, const float* logits, Index n, Index ld, Index valid, Index vocab_start,
                       const std::int32_t* history, const Index* offsets, float penalty, const std::uint8_t* ban_eos,
                       const std::int32_t* eos, Index eos_count, float inv_temperature) const override;
  void row_max_f64(double* out, const float* x, Index n, Index ld, Index valid, bool finite_only) const override;
  void row_sumexp_f64(double* out, const float* x, Index n, Index ld, Index valid, const double* shift,
                      bool finite_only) const override;
  void row_mass_histogram(std::uint64_t* out, const float* x, Index n, Index ld, Index valid, const double* shift,
                          const std::uint64_t* prefix, int bits) const override;
  void row_top_k(double* out, const float* z, Index n, Index valid, Index k, Index vocab_start) const override;
  void gumbel_argmax(double* best_score, double* best_id, const float* z, Index n, Index valid,
                     const double* threshold, bool noisy, std::uint64_t seed, const std::uint64_t* sample_ids,
                     const std::int64_t* positions, Index vocab_start) const override;
  void logits_at_ids(double* out, const float* x, Index n, Index ld, Index valid, const double* ids, Index count,
                     Index stride, Index vocab_start) const override;

  // ---- mixed precision (bf16 operands, fp32 accumulation and masters) ------------------------
  // bf16 values travel as their 16 bits (std::uint16_t), rounded to nearest, ties to even,
  // exactly as core/dtype.h's f32_to_bf16.
  void to_bf16(std::uint16_t* out, const float* in, Index n) const override;
  void from_bf16(float* out, const std::uint16_t* in, Index n) const override;
  void linear_forward_bf16(float* y, const std::uint16_t* x, const std::uint16_t* w, Index n, Index in,
                           Index out) const override;
  void linear_backward_bf16(float* dx, float* dw, const float* dy, std::uint16_t* dy16, const std::uint16_t* x,
                            const std::uint16_t* w, Index n, Index in, Index out, bool accumulate_dx) const override;
  void rmsnorm_forward_bf16(std::uint16_t* out, float* rstd, const float* x, const float* w, Index n, Index dim,
                            float eps, float w_offset) const override;
  void glu_forward_bf16(std::uint16_t* out, const std::uint16_t* gate, const std::uint16_t* up,
                        Index n, Activation act) const override;
  void glu_backward_bf16(float* dgate, float* dup, const float* dout, const std::uint16_t* gate,
                         const std::uint16_t* up, Index n, Activation act) const override;
  // cublasGemmEx with a bf16 C: the float32 accumulation rounded as written.
  // With a bias: the product in float32 (pooled scratch), then one kernel adds the bias and rounds.
  void linear_forward_bf16_out(std::uint16_t* y16, const std::uint16_t* x, const std::uint16_t* w, const float* bias,
                               Index n, Index in, Index out) const override;
  // Row-major C[m, n] (float32) = alpha op(A) op(B) + beta C with bf16 A and B and float32
  // accumulation (cublasGemmEx, CUBLAS_COMPUTE_32F).
  void gemm_bf16(bool trans_a, bool trans_b, Index m, Index n, Index k, float alpha, const std::uint16_t* a,
                 Index lda, const std::uint16_t* b, Index ldb, float beta, float* c, Index ldc) const override;
  void gemm_bf16(bool trans_a, bool trans_b, Index m, Index n, Index k, float alpha, const std::uint16_t* a,
                 Index lda, const std::uint16_t* b, Index ldb, float beta, std::uint16_t* c,
                 Index ldc) const override;

 private:
  // Row-major C = alpha op(A) op(B) + beta C for `batch` matrices `stride_*` elements apart.
  // gemm_bf16 into a C of `c_type` (CUDA_R_32F or CUDA_R_16BF).
  void gemm_bf16_to(bool trans_a, bool trans_b, Index m, Index n, Index k, float alpha, const std::uint16_t* a,
                    Index lda, const std::uint16_t* b, Index ldb, float beta, void* c, cudaDataType c_type,
                    Index ldc) const;
  void gemm_batched(bool trans_a, bool trans_b, Index m, Index n, Index k, float alpha, const float* a, Index lda,
                    Index stride_a, const float* b, Index ldb, Index stride_b, float beta, float* c, Index ldc,
                    Index stride_c, Index batch) const;

  bool fused(Index head_dim, Index num_seqs) const;         // the fused SIMT kernels take it
  bool tensor_cores(Index head_dim, Index num_seqs) const;  // the tensor-core kernels take it (bf16)
  // A device copy of `bytes` of host memory (kernel launch arguments), queued on the stream -- or
  // the copy of the same bytes made by a recent call (RecentUploads: a layer's attention arrays are
  // the step's). Read-only; valid through the next few distinct uploads.
  const void* upload(const void* host, std::size_t bytes) const;
  const long long* upload_indices(const Index* host, Index count) const;
  // cached_attention_forward(_bf16) through the fused kernel: false when it cannot take it.
  // q, the cache and out are bf16 (bf16) or float32.
  bool fused_cached(void* out, const void* q, const void* k_cache, const void* v_cache, bool bf16,
                    const Index* row_begin, const Index* slots, const Index* first_position, Index runs,
                    Index capacity, Index heads, Index kv_heads, Index head_dim, AttentionScores scores) const;
  // The launch arguments of the fused kernels (q, k, v bf16 or float32), cu_seqlens uploaded.
  cuda_detail::FusedAttentionArgs fused_args(const void* q, const void* k, const void* v, bool bf16,
                                             const Index* cu_seqlens, Index num_seqs, Index heads, Index kv_heads,
                                             Index head_dim, AttentionScores scores) const;
  // The fused backward (a scratch for its per-row deltas included): with `out` (the forward's
  // bf16 output) on tensor cores, else the SIMT kernels.
  void fused_backward(float* dq, float* dk, float* dv, const float* dout, const void* q, const void* k, const void* v,
                      bool bf16, const void* out, const float* lse, const Index* cu_seqlens, Index num_seqs,
                      Index heads, Index kv_heads, Index head_dim, AttentionScores scores) const;
  // A float32 copy of n bf16 values, in scratch.
  PooledBuffer widened(const std::uint16_t* x, Index n) const;

  cudaStream_t stream_ = nullptr;
  Attention attention_ = Attention::TensorCores;
  cublasHandle_t blas_ = nullptr;
  CachingAllocator& allocator_;
  mutable RecentUploads recent_;  // upload()'s copies
};

}  // namespace spin::kernels
