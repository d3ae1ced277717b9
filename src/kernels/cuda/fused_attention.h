// Fused causal attention for CudaKernels (fused_attention.cu): FlashAttention's algorithm in
// float32 arithmetic -- no score matrix in global memory; the forward saves a log-sum-exp per
// query row and head ([rows, heads]) and the backward recomputes the probabilities from it. head_dim 32, 64,
// 96, 128, 192 or 256 (kernels.h's fused_attention_head_dim, which spin plan reads too); CudaKernels
// uses the cuBLAS path otherwise.
#pragma once

#include <cuda_runtime.h>

namespace spin::kernels::cuda_detail {

// q, k, v and the output: float32, or with `bf16` bf16 (mixed precision), widened as read and
// rounded as written. Gradients, dout and the saved log-sum-exps are float32.
struct FusedAttentionArgs {
  const void* q;                 // [rows, heads, head_dim]
  const void* k;                 // [rows, kv_heads, head_dim]
  const void* v;
  bool bf16 = false;
  const long long* cu_seqlens;   // device copy, num_seqs + 1
  // Tensor-core forward only (may be null): per sequence, the row of k and v holding its first
  // key -- a prefill's keys in their KV-cache slots; null: the sequence's own rows (cu_seqlens).
  const long long* kv_starts = nullptr;
  long long num_seqs = 0;
  long long rows = 0;            // cu_seqlens[num_seqs]: the packed rows, counted from 0
  long long longest = 0;         // the longest sequence's length
  int heads = 0, kv_heads = 0;
  long long head_dim = 0;
  float scale = 1.0f;            // kernels::AttentionScores'
  float softcap = 0.0f;          // 0: none
  long long window = 0;          // 0: none
};

// Generation against a KV cache (Kernels::cached_attention_forward): one launch for all runs.
// q, the cache and the output: float32, or all bf16.
struct FusedCachedArgs {
  const void* q;                  // [rows, heads, head_dim]
  const void* k_cache;            // [slots, capacity, kv_heads, head_dim]
  const void* v_cache;
  bool bf16 = false;
  const long long* runs;          // device: row_begin[num_runs + 1], slots[num_runs], first[num_runs]
  long long num_runs = 0;
  long long longest_run = 0;      // rows of the largest run
  long long capacity = 0;
  int heads = 0, kv_heads = 0;
  long long head_dim = 0;
  float scale = 1.0f, softcap = 0.0f;  // kernels::AttentionScores'
  long long window = 0;
};

// out [rows, heads, head_dim]; lse [rows, heads].
void fused_attention_forward(const FusedAttentionArgs& a, void* out, float* lse, cudaStream_t stream);
// out [rows, heads, head_dim].
void fused_cached_attention(const FusedCachedArgs& a, void* out, cudaStream_t stream);
// dq, dk, dv overwritten; delta: scratch [rows, heads].
void fused_attention_backward(const FusedAttentionArgs& a, float* dq, float* dk, float* dv, const float* dout,
                              const float* lse, float* delta, cudaStream_t stream);

// Tensor-core kernels for bf16 q, k, v (tensor_core_attention.cu): head_dim 64, 128 or 256. The
// same saved log-sum-exp as the kernels above; the backward also reads the forward's bf16 output.
bool tensor_core_attention_supports(long long head_dim);
void tensor_core_attention_forward(const FusedAttentionArgs& a, void* out, float* lse, cudaStream_t stream);
void tensor_core_attention_backward(const FusedAttentionArgs& a, float* dq, float* dk, float* dv, const float* dout,
                                    const void* out, const float* lse, float* delta, cudaStream_t stream);

}  // namespace spin::kernels::cuda_detail
