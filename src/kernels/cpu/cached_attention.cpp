// Attention against a KV cache, for generation: a prefill run of L prompt rows and a decode
// run of one row are the same computation, S = c(scale Q K[k0 : first + L]^T) with row i masked
// beyond position first + i and, under a sliding window, before first_key(first + i) (scale,
// cap c and window as kernels::AttentionScores; k0 = the first row's first key), softmax,
// O = P V. One sgemm pair per (run, head).
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
    const Index k0 = scores.first_key(first);  // the first position any row sees
    const Index keys = first + rows - k0;      // positions [k0, first + rows)
    s.resize(static_cast<std::size_t>(rows * keys));
    const float* slot_k = k_cache + (slots[r] * capacity + k0) * kv_ld;
    const float* slot_v = v_cache + (slots[r] * capacity + k0) * kv_ld;
    for (Index h = 0; h < heads; ++h) {
      const float* qh = q + row_begin[r] * q_ld + h * head_dim;
      const Index g = h / group;
      gemm(false, true, rows, keys, head_dim, scale, qh, q_ld, slot_k + g * head_dim, kv_ld, 0.0f,
           s.data(), keys);
      for (Index i = 0; i < rows; ++i) {
        cpu::softmax_row(s.data() + i * keys, scores.first_key(first + i) - k0, first + i + 1 - k0, keys,
                         scores.softcap);
      }
      gemm(false, false, rows, head_dim, keys, 1.0f, s.data(), keys, slot_v + g * head_dim,
           kv_ld, 0.0f, out + row_begin[r] * q_ld + h * head_dim, q_ld);
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
// float32, the float32 computation, the output rounded -- the reference for the GPU's kernel,
// which widens as it reads.
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
  for (Index r = 0; r < runs; ++r) {
    const Index keys = first_position[r] + row_begin[r + 1] - row_begin[r];
    const std::vector<float> k = cpu::widen(k_cache + slots[r] * capacity * kv_ld, keys * kv_ld);
    const std::vector<float> v = cpu::widen(v_cache + slots[r] * capacity * kv_ld, keys * kv_ld);
    const Index run_rows[2] = {0, row_begin[r + 1] - row_begin[r]};
    const Index slot0 = 0;
    cached_attention_forward(o.data() + row_begin[r] * q_ld, q32.data() + row_begin[r] * q_ld,
                             k.data(), v.data(), run_rows, &slot0, first_position + r, 1, keys,
                             heads, kv_heads, head_dim, scores);
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
