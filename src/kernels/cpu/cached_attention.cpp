// Attention against a KV cache, for generation: a prefill run of L prompt rows and a decode
// run of one row are the same computation, S = c(scale Q K[k0 : first + L]^T) with row i masked
// beyond position first + i and, under a sliding window, before first_key(first + i) (scale,
// cap c and window as kernels::AttentionScores; k0 = the first row's first key), softmax,
// O = P V. One sgemm pair per (run, head) -- two where the run's positions wrap around a ring
// cache's end (position p at row p mod capacity): the scores' columns and P V in two parts.
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/bf16_buffers.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/softmax_row.h"

namespace spin::kernels {

void CpuKernels::cached_attention_forward(float* out, const float* q, const float* k_cache,
                                          const float* v_cache, const Index* row_begin,
                                          const Index* slots, const Index* first_position,
                                          Index runs, Index capacity, Index heads,
                                          Index kv_heads, Index head_dim, AttentionScores scores) const {
  const Index q_ld = heads * head_dim;
  const Index kv_ld = kv_heads * head_dim;
  const Index group = heads / kv_heads;
  const float scale = scores.scale;
  std::vector<float> s;
  for (Index r = 0; r < runs; ++r) {
    const Index rows = row_begin[r + 1] - row_begin[r];
    const Index first = first_position[r];
    // The positions [k0, first + rows) any row sees, in the slot's rows.
    const auto [k0, keys, start, head, tail] = cached_span(scores, first, rows, capacity);
    s.resize(static_cast<std::size_t>(rows * keys));
    const float* slot_k = k_cache + slots[r] * capacity * kv_ld;
    const float* slot_v = v_cache + slots[r] * capacity * kv_ld;
    for (Index h = 0; h < heads; ++h) {
      const float* qh = q + row_begin[r] * q_ld + h * head_dim;
      const Index g = h / group;
      float* o = out + row_begin[r] * q_ld + h * head_dim;
      gemm(false, true, rows, head, head_dim, scale, qh, q_ld, slot_k + start * kv_ld + g * head_dim, kv_ld, 0.0f,
           s.data(), keys);
      if (tail > 0) {
        gemm(false, true, rows, tail, head_dim, scale, qh, q_ld, slot_k + g * head_dim, kv_ld, 0.0f, s.data() + head,
             keys);
      }
      for (Index i = 0; i < rows; ++i) {
        cpu::softmax_row(s.data() + i * keys, scores.first_key(first + i) - k0, first + i + 1 - k0, keys,
                         scores.softcap);
      }
      gemm(false, false, rows, head_dim, head, 1.0f, s.data(), keys, slot_v + start * kv_ld + g * head_dim, kv_ld, 0.0f,
           o, q_ld);
      if (tail > 0) {
        gemm(false, false, rows, head_dim, tail, 1.0f, s.data() + head, keys, slot_v + g * head_dim, kv_ld, 1.0f, o,
             q_ld);
      }
    }
  }
}

void CpuKernels::scatter_rows(float* dst, const float* src, const Index* rows, Index n,
                              Index width) const {
  for (Index i = 0; i < n; ++i) {
    std::memcpy(dst + rows[i] * width, src + i * width, static_cast<std::size_t>(width) * sizeof(float));
  }
}

// Mixed precision on the CPU: q and each run's cached positions widened (exactly) into
// float32 -- a ring of the positions the run reads --, the float32 computation, the output
// rounded: the reference for the GPU's kernel, which widens as it reads.
void CpuKernels::cached_attention_forward_bf16(std::uint16_t* out, const std::uint16_t* q,
                                               const std::uint16_t* k_cache,
                                               const std::uint16_t* v_cache,
                                               const Index* row_begin, const Index* slots,
                                               const Index* first_position, Index runs,
                                               Index capacity, Index heads, Index kv_heads,
                                               Index head_dim, AttentionScores scores) const {
  const Index q_ld = heads * head_dim, kv_ld = kv_heads * head_dim;
  const std::vector<float> q32 = cpu::widen(q, row_begin[runs] * q_ld);
  std::vector<float> o(q32.size());
  std::vector<float> k, v;
  for (Index r = 0; r < runs; ++r) {
    const Index rows = row_begin[r + 1] - row_begin[r];
    const CachedSpan span = cached_span(scores, first_position[r], rows, capacity);
    const auto widen_span = [&](const std::uint16_t* cache) {
      const std::uint16_t* slot = cache + slots[r] * capacity * kv_ld;
      std::vector<float> in_order = cpu::widen(slot + span.start * kv_ld, span.head * kv_ld);
      const std::vector<float> wrapped = cpu::widen(slot, span.tail * kv_ld);
      in_order.insert(in_order.end(), wrapped.begin(), wrapped.end());
      return in_order;
    };
    // The positions read, in order from row 0: the same scores shifted by first_key (a window's
    // first key and its rows' move alike).
    k = widen_span(k_cache);
    v = widen_span(v_cache);
    const Index run_rows[2] = {0, rows}, slot0 = 0, shifted = first_position[r] - span.first_key;
    cached_attention_forward(o.data() + row_begin[r] * q_ld, q32.data() + row_begin[r] * q_ld, k.data(), v.data(),
                             run_rows, &slot0, &shifted, 1, span.keys, heads, kv_heads, head_dim, scores);
  }
  cpu::round_into(out, o);
}

void CpuKernels::scatter_rows_bf16(std::uint16_t* dst, const std::uint16_t* src, const Index* rows,
                                   Index n, Index width) const {
  for (Index i = 0; i < n; ++i) {
    std::memcpy(dst + rows[i] * width, src + i * width,
                static_cast<std::size_t>(width) * sizeof(std::uint16_t));
  }
}

void CpuKernels::gather_rows(float* dst, const float* src, const Index* rows, Index n,
                             Index width) const {
  for (Index i = 0; i < n; ++i) {
    std::memcpy(dst + i * width, src + rows[i] * width, static_cast<std::size_t>(width) * sizeof(float));
  }
}

void CpuKernels::gather_rows_bf16(std::uint16_t* dst, const std::uint16_t* src, const Index* rows, Index n,
                                  Index width) const {
  for (Index i = 0; i < n; ++i) {
    std::memcpy(dst + i * width, src + rows[i] * width, static_cast<std::size_t>(width) * sizeof(std::uint16_t));
  }
}

}  // namespace spin::kernels
