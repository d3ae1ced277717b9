// CudaKernels' attention (cuda_kernels.h): the choice among the kernels for each call -- the
// tensor-core forward and backward (bf16, head_dim 64 / 128 / 256), the fused SIMT kernels, or cuBLAS
// products around a masked softmax -- for packed causal attention and for attention over the
// KV cache (prefill runs, decode runs, and both in one call under continuous batching).
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include <cuda_bf16.h>

#include "kernels/cuda/attention_softmax_kernels.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device_helpers.cuh"
#include "kernels/cuda/device_memory.h"

namespace spin::kernels {

using namespace cuda_detail;
using namespace cuda_detail::device;

bool CudaKernels::fused(Index head_dim, Index num_seqs) const {
  return attention_ != Attention::Cublas && fused_attention_head_dim(head_dim) &&
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
                                                        Index kv_heads, Index head_dim, AttentionScores scores) const {
  cuda_detail::FusedAttentionArgs a;
  a.q = q, a.k = k, a.v = v, a.bf16 = bf16;
  a.cu_seqlens = upload_indices(cu_seqlens, num_seqs + 1);
  a.num_seqs = num_seqs;
  a.rows = cu_seqlens[num_seqs];
  a.longest = longest(cu_seqlens, num_seqs);
  a.heads = static_cast<int>(heads), a.kv_heads = static_cast<int>(kv_heads);
  a.head_dim = head_dim;
  a.scale = scores.scale, a.softcap = scores.softcap, a.window = scores.window;
  return a;
}

// Fused when the head size allows (fused_attention.h), else per sequence: S = scale Q K^T for
// the query heads of each kv head in one strided-batched product (the kv head's K is shared:
// stride 0), the causal softmax of every head, O = P V.
void CudaKernels::attention_forward(float* out, float* probs, const float* q, const float* k, const float* v,
                                    const Index* cu_seqlens, Index num_seqs, Index heads, Index kv_heads,
                                    Index head_dim, AttentionScores scores) const {
  if (num_seqs == 0) return;
  if (fused(head_dim, num_seqs)) {
    const auto a = fused_args(q, k, v, false, cu_seqlens, num_seqs, heads, kv_heads, head_dim, scores);
    cuda_detail::fused_attention_forward(a, out, probs, stream_);
    return;
  }
  const Index q_ld = heads * head_dim, kv_ld = kv_heads * head_dim, group = heads / kv_heads;
  const float scale = scores.scale;
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
        p, len, len, 0, square, scores.softcap, scores.window);
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
                                     Index num_seqs, Index heads, Index kv_heads, Index head_dim,
                                     AttentionScores scores) const {
  if (num_seqs == 0) return;
  if (fused(head_dim, num_seqs)) {
    fused_backward(dq, dk, dv, dout, q, k, v, false, nullptr, probs, cu_seqlens, num_seqs, heads, kv_heads,
                   head_dim, scores);
    return;
  }
  const Index q_ld = heads * head_dim, kv_ld = kv_heads * head_dim, group = heads / kv_heads;
  const float scale = scores.scale;
  const Index rows = cu_seqlens[num_seqs] - cu_seqlens[0];
  const auto kv_bytes = static_cast<std::size_t>(rows * kv_ld) * sizeof(float);
  SPIN_CUDA_CHECK(cudaMemsetAsync(dk, 0, kv_bytes, stream_));
  SPIN_CUDA_CHECK(cudaMemsetAsync(dv, 0, kv_bytes, stream_));
  const Index most = longest(cu_seqlens, num_seqs);
  const auto square_bytes = static_cast<std::size_t>(std::max<Index>(1, heads * most * most)) * sizeof(float);
  PooledBuffer scratch(allocator_, square_bytes);
  float* ds = scratch.as<float>();
  // A cap's slope needs the scores before it: computed again (the probabilities are what is kept).
  PooledBuffer raw_scores(allocator_, scores.softcap > 0.0f ? square_bytes : sizeof(float));
  float* raw = scores.softcap > 0.0f ? raw_scores.as<float>() : nullptr;
  const float* p = probs;
  for (Index s = 0; s < num_seqs; ++s) {
    const Index start = cu_seqlens[s], len = cu_seqlens[s + 1] - start;
    if (len == 0) continue;
    const Index square = len * len;
    for (Index g = 0; g < kv_heads; ++g) {  // dP = dO V^T
      gemm_batched(false, true, len, len, head_dim, 1.0f, dout + start * q_ld + g * group * head_dim, q_ld, head_dim,
                   v + start * kv_ld + g * head_dim, kv_ld, 0, 0.0f, ds + g * group * square, len, square, group);
    }
    for (Index g = 0; raw != nullptr && g < kv_heads; ++g) {  // S = scale Q K^T, before the cap
      gemm_batched(false, true, len, len, head_dim, scale, q + start * q_ld + g * group * head_dim, q_ld, head_dim,
                   k + start * kv_ld + g * head_dim, kv_ld, 0, 0.0f, raw + g * group * square, len, square, group);
    }
    attention_ds_kernel<<<dim3(static_cast<unsigned>(len), static_cast<unsigned>(heads)), kThreads, 0, stream_>>>(
        ds, p, len, raw, scores.softcap);
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
                                 Index num_seqs, Index heads, Index kv_heads, Index head_dim,
                                 AttentionScores scores) const {
  const auto a = fused_args(q, k, v, bf16, cu_seqlens, num_seqs, heads, kv_heads, head_dim, scores);
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
  from_bf16(out.as<float>(), x, n);
  return out;
}

// Mixed precision: the fused kernels (tensor-core or SIMT) read bf16 q, k, v and write a bf16
// output themselves; the cuBLAS path runs in float32 on widened copies.
void CudaKernels::attention_forward_bf16(std::uint16_t* out, float* saved, const std::uint16_t* q,
                                         const std::uint16_t* k, const std::uint16_t* v, const Index* cu_seqlens,
                                         Index num_seqs, Index heads, Index kv_heads, Index head_dim,
                                         AttentionScores scores) const {
  if (num_seqs == 0) return;
  if (fused(head_dim, num_seqs)) {
    const auto a = fused_args(q, k, v, true, cu_seqlens, num_seqs, heads, kv_heads, head_dim, scores);
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
                    heads, kv_heads, head_dim, scores);
  to_bf16(out, o.as<float>(), rows * heads * head_dim);
}

void CudaKernels::attention_backward_bf16(float* dq, float* dk, float* dv, const float* dout, const std::uint16_t* q,
                                          const std::uint16_t* k, const std::uint16_t* v, const std::uint16_t* out,
                                          const float* saved, const Index* cu_seqlens, Index num_seqs, Index heads,
                                          Index kv_heads, Index head_dim, AttentionScores scores) const {
  if (num_seqs == 0) return;
  if (fused(head_dim, num_seqs)) {
    fused_backward(dq, dk, dv, dout, q, k, v, true, out, saved, cu_seqlens, num_seqs, heads, kv_heads, head_dim,
                   scores);
    return;
  }
  const Index rows = cu_seqlens[num_seqs];
  const PooledBuffer q32 = widened(q, rows * heads * head_dim), k32 = widened(k, rows * kv_heads * head_dim),
                     v32 = widened(v, rows * kv_heads * head_dim);
  attention_backward(dq, dk, dv, dout, q32.as<float>(), k32.as<float>(), v32.as<float>(), saved, cu_seqlens, num_seqs,
                     heads, kv_heads, head_dim, scores);
}

bool CudaKernels::fused_cached(void* out, const void* q, const void* k_cache, const void* v_cache, bool bf16,
                               const Index* row_begin, const Index* slots, const Index* first_position, Index runs,
                               Index capacity, Index heads, Index kv_heads, Index head_dim,
                               AttentionScores scores) const {
  if (!fused(head_dim, runs)) return false;
  // One launch for every run (decode batches are many short runs); the runs' shape arrays go up.
  std::vector<Index> host(static_cast<std::size_t>(3 * runs + 1));
  std::copy(row_begin, row_begin + runs + 1, host.begin());
  std::copy(slots, slots + runs, host.begin() + runs + 1);
  std::copy(first_position, first_position + runs, host.begin() + 2 * runs + 1);
  const long long* device_runs = upload_indices(host.data(), static_cast<Index>(host.size()));
  cuda_detail::FusedCachedArgs a;
  a.q = q, a.k_cache = k_cache, a.v_cache = v_cache, a.bf16 = bf16;
  a.runs = device_runs;
  a.num_runs = runs;
  a.longest_run = longest(row_begin, runs);
  a.capacity = capacity;
  a.heads = static_cast<int>(heads), a.kv_heads = static_cast<int>(kv_heads);
  a.head_dim = head_dim;
  a.scale = scores.scale, a.softcap = scores.softcap, a.window = scores.window;
  cuda_detail::fused_cached_attention(a, out, stream_);
  return true;
}

// Mixed precision the fused kernel cannot take: q and each run's cached positions widened into
// float32 scratch, the float32 path on them, the output rounded.
void CudaKernels::cached_attention_forward_bf16(std::uint16_t* out, const std::uint16_t* q,
                                                const std::uint16_t* k_cache, const std::uint16_t* v_cache,
                                                const Index* row_begin, const Index* slots,
                                                const Index* first_position, Index runs, Index capacity, Index heads,
                                                Index kv_heads, Index head_dim, AttentionScores scores) const {
  if (runs == 0) return;
  // Prefills -- runs at position 0: causal attention over their own rows, whose keys and values
  // sit at the start of their slots (a ring's too: a run's rows fit in its slot) -- go to the tensor-core forward
  // (reading K/V there, a log-sum-exp scratch). A continuous batch puts the prompts it starts after the sequences it
  // decodes: those go to the fused kernel, in the same call.
  Index decoding = runs;
  while (decoding > 0 && first_position[decoding - 1] == 0) --decoding;
  const Index prefills = runs - decoding;
  if (prefills > 0 && tensor_cores(head_dim, prefills) && (decoding == 0 || fused(head_dim, decoding))) {
    if (decoding > 0) {
      fused_cached(out, q, k_cache, v_cache, true, row_begin, slots, first_position, decoding, capacity, heads,
                   kv_heads, head_dim, scores);
    }
    const Index first_row = row_begin[decoding], q_ld = heads * head_dim;
    std::vector<Index> prefill_rows(static_cast<std::size_t>(prefills + 1)), starts(static_cast<std::size_t>(prefills));
    for (Index r = 0; r <= prefills; ++r) prefill_rows[static_cast<std::size_t>(r)] = row_begin[decoding + r] - first_row;
    for (Index r = 0; r < prefills; ++r) starts[static_cast<std::size_t>(r)] = slots[decoding + r] * capacity;
    PooledBuffer lse(allocator_,
                     static_cast<std::size_t>(std::max<Index>(1, prefill_rows.back() * heads)) * sizeof(float));
    auto a = fused_args(q + first_row * q_ld, k_cache, v_cache, true, prefill_rows.data(), prefills, heads, kv_heads,
                        head_dim, scores);
    a.kv_starts = upload_indices(starts.data(), prefills);
    cuda_detail::tensor_core_attention_forward(a, out + first_row * q_ld, lse.as<float>(), stream_);
    return;
  }
  if (fused_cached(out, q, k_cache, v_cache, true, row_begin, slots, first_position, runs, capacity, heads, kv_heads,
                   head_dim, scores)) {
    return;
  }
  // Each run's positions widened in order into float32 scratch -- from row 0, the scores shifted
  // by the first key (a window's first key and its rows' move alike) --, the float32 path on them.
  const Index kv_ld = kv_heads * head_dim, q_ld = heads * head_dim, rows = row_begin[runs];
  Index most_keys = 1;
  for (Index r = 0; r < runs; ++r) {
    most_keys =
        std::max(most_keys, cached_span(scores, first_position[r], row_begin[r + 1] - row_begin[r], capacity).keys);
  }
  PooledBuffer k(allocator_, static_cast<std::size_t>(most_keys * kv_ld) * sizeof(float));
  PooledBuffer v(allocator_, static_cast<std::size_t>(most_keys * kv_ld) * sizeof(float));
  const PooledBuffer q32 = widened(q, rows * q_ld);
  PooledBuffer o(allocator_, static_cast<std::size_t>(std::max<Index>(1, rows * q_ld)) * sizeof(float));
  for (Index r = 0; r < runs; ++r) {
    const Index run = row_begin[r + 1] - row_begin[r];
    const CachedSpan span = cached_span(scores, first_position[r], run, capacity);
    for (const auto& [dst, cache] : {std::pair{k.as<float>(), k_cache}, std::pair{v.as<float>(), v_cache}}) {
      const std::uint16_t* slot = cache + slots[r] * capacity * kv_ld;
      from_bf16(dst, slot + span.start * kv_ld, span.head * kv_ld);
      if (span.tail > 0) from_bf16(dst + span.head * kv_ld, slot, span.tail * kv_ld);
    }
    const Index run_rows[2] = {0, run}, slot0 = 0, shifted = first_position[r] - span.first_key;
    cached_attention_forward(o.as<float>() + row_begin[r] * q_ld, q32.as<float>() + row_begin[r] * q_ld, k.as<float>(),
                             v.as<float>(), run_rows, &slot0, &shifted, 1, span.keys, heads, kv_heads, head_dim,
                             scores);
  }
  to_bf16(out, o.as<float>(), rows * q_ld);
}

void CudaKernels::cached_attention_forward(float* out, const float* q, const float* k_cache, const float* v_cache,
                                           const Index* row_begin, const Index* slots, const Index* first_position,
                                           Index runs, Index capacity, Index heads, Index kv_heads,
                                           Index head_dim, AttentionScores scores) const {
  if (runs == 0) return;
  if (fused_cached(out, q, k_cache, v_cache, false, row_begin, slots, first_position, runs, capacity, heads, kv_heads,
                   head_dim, scores)) {
    return;
  }
  const Index q_ld = heads * head_dim, kv_ld = kv_heads * head_dim, group = heads / kv_heads;
  const float scale = scores.scale;
  // Each run reads its positions [first_key, first + rows) in order -- in place, or copied from a
  // ring's two parts where they wrap --, the scores shifted by first_key (a window's first key and
  // its rows' move alike).
  Index largest = 1, most_wrapped = 0;
  for (Index r = 0; r < runs; ++r) {
    const Index rows = row_begin[r + 1] - row_begin[r];
    const CachedSpan span = cached_span(scores, first_position[r], rows, capacity);
    largest = std::max(largest, heads * rows * span.keys);
    if (span.tail > 0) most_wrapped = std::max(most_wrapped, span.keys);
  }
  PooledBuffer scratch(allocator_, static_cast<std::size_t>(largest) * sizeof(float));
  PooledBuffer in_order(allocator_,
                        static_cast<std::size_t>(std::max<Index>(1, 2 * most_wrapped * kv_ld)) * sizeof(float));
  float* s = scratch.as<float>();
  for (Index r = 0; r < runs; ++r) {
    const Index rows = row_begin[r + 1] - row_begin[r];
    if (rows == 0) continue;
    const CachedSpan span = cached_span(scores, first_position[r], rows, capacity);
    const Index first = first_position[r] - span.first_key, keys = span.keys, block = rows * keys;
    const float* slot_k = k_cache + (slots[r] * capacity + span.start) * kv_ld;
    const float* slot_v = v_cache + (slots[r] * capacity + span.start) * kv_ld;
    if (span.tail > 0) {
      float* const ordered = in_order.as<float>();
      const auto copy = [&](float* dst, const float* src, Index n) {
        SPIN_CUDA_CHECK(
            cudaMemcpyAsync(dst, src, static_cast<std::size_t>(n) * sizeof(float), cudaMemcpyDeviceToDevice, stream_));
      };
      for (const auto& [dst, cache] : {std::pair{ordered, k_cache}, std::pair{ordered + keys * kv_ld, v_cache}}) {
        const float* slot = cache + slots[r] * capacity * kv_ld;
        copy(dst, slot + span.start * kv_ld, span.head * kv_ld);
        copy(dst + span.head * kv_ld, slot, span.tail * kv_ld);
      }
      slot_k = ordered;
      slot_v = ordered + keys * kv_ld;
    }
    for (Index g = 0; g < kv_heads; ++g) {
      gemm_batched(false, true, rows, keys, head_dim, scale, q + row_begin[r] * q_ld + g * group * head_dim, q_ld,
                   head_dim, slot_k + g * head_dim, kv_ld, 0, 0.0f, s + g * group * block, keys, block, group);
    }
    causal_softmax_kernel<<<dim3(static_cast<unsigned>(rows), static_cast<unsigned>(heads)), kThreads, 0, stream_>>>(
        s, rows, keys, first, block, scores.softcap, scores.window);
    SPIN_CUDA_CHECK_LAUNCH("cached attention softmax");
    for (Index g = 0; g < kv_heads; ++g) {
      gemm_batched(false, false, rows, head_dim, keys, 1.0f, s + g * group * block, keys, block,
                   slot_v + g * head_dim, kv_ld, 0, 0.0f, out + row_begin[r] * q_ld + g * group * head_dim, q_ld,
                   head_dim, group);
    }
  }
}

}  // namespace spin::kernels
