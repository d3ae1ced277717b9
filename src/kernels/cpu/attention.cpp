// Causal grouped-query self-attention over packed sequences, one (sequence, head) at a time:
//   S = c(scale Q K^T) (causal: j <= i; with a sliding window also j > i - window),
//   P = softmax_rows(S),  O = P V,
// scale, the cap c and the window as kernels::AttentionScores (c(x) = cap tanh(x / cap), or none).
// Backward (P saved):  dP = dO V^T,  dS = P * (dP - rowsum(P * dP)) * c'  (c' from the scores
// computed again: 1 - (S / cap)^2; 1 without a cap),
//   dQ = scale dS K,  dK += scale dS^T Q,  dV += P^T dO   (+= over the query heads of a group).
// The matrix products go through sgemm with the heads' strides as leading dimensions, one block
// of kBlock query rows at a time: rows [i0, i1) only need keys [0, i1), which skips most of the
// masked upper triangle (62% of the full work at 256 tokens instead of 100%), and under a window
// only keys [first_key(i0), i1) -- a block's products cost (window + kBlock) keys, not i1.
#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/bf16_buffers.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/softmax_row.h"
#include "kernels/cpu/vec_math.h"

namespace spin::kernels {

namespace {
constexpr Index kBlock = 64;

struct Geometry {
  Index heads, kv_heads, head_dim;
  Index q_ld() const { return heads * head_dim; }
  Index kv_ld() const { return kv_heads * head_dim; }
  Index group(Index h) const { return h / (heads / kv_heads); }
};
}  // namespace

void CpuKernels::attention_forward(float* out, float* probs, const float* q, const float* k,
                                   const float* v, const Index* cu_seqlens, Index num_seqs,
                                   Index heads, Index kv_heads, Index head_dim, AttentionScores scores) const {
  const Geometry g{heads, kv_heads, head_dim};
  const float scale = scores.scale;
  float* p = probs;
  for (Index s = 0; s < num_seqs; ++s) {
    const Index start = cu_seqlens[s];
    const Index len = cu_seqlens[s + 1] - start;
    for (Index h = 0; h < heads; ++h, p += len * len) {
      const float* qh = q + start * g.q_ld() + h * head_dim;
      const float* kh = k + start * g.kv_ld() + g.group(h) * head_dim;
      const float* vh = v + start * g.kv_ld() + g.group(h) * head_dim;
      for (Index i0 = 0; i0 < len; i0 += kBlock) {
        // Rows [i0, i1) against keys [j0, i1); each row's softmax zeroes the rest of its len.
        const Index i1 = std::min(len, i0 + kBlock), j0 = scores.first_key(i0);
        gemm(false, true, i1 - i0, i1 - j0, head_dim, scale, qh + i0 * g.q_ld(), g.q_ld(),
             kh + j0 * g.kv_ld(), g.kv_ld(), 0.0f, p + i0 * len + j0, len);
        for (Index i = i0; i < i1; ++i) {
          cpu::softmax_row(p + i * len, scores.first_key(i), i + 1, len, scores.softcap);
        }
        gemm(false, false, i1 - i0, head_dim, i1 - j0, 1.0f, p + i0 * len + j0, len,
             vh + j0 * g.kv_ld(), g.kv_ld(), 0.0f, out + (start + i0) * g.q_ld() + h * head_dim,
             g.q_ld());
      }
    }
  }
}

void CpuKernels::attention_backward(float* dq, float* dk, float* dv, const float* dout,
                                    const float* q, const float* k, const float* v,
                                    const float* probs, const Index* cu_seqlens, Index num_seqs,
                                    Index heads, Index kv_heads, Index head_dim, AttentionScores scores) const {
  const Geometry g{heads, kv_heads, head_dim};
  const float scale = scores.scale, cap = scores.softcap;
  const Index rows = cu_seqlens[num_seqs] - cu_seqlens[0];
  std::memset(dk, 0, static_cast<std::size_t>(rows * g.kv_ld()) * sizeof(float));
  std::memset(dv, 0, static_cast<std::size_t>(rows * g.kv_ld()) * sizeof(float));
  std::vector<float> ds, raw;  // raw: a block's scores before the cap (with one)
  const float* p = probs;
  for (Index s = 0; s < num_seqs; ++s) {
    const Index start = cu_seqlens[s];
    const Index len = cu_seqlens[s + 1] - start;
    ds.resize(static_cast<std::size_t>(len * len));
    if (cap > 0.0f) raw.resize(static_cast<std::size_t>(kBlock * len));
    for (Index h = 0; h < heads; ++h, p += len * len) {
      const Index q_off = start * g.q_ld() + h * head_dim;
      const Index kv_off = start * g.kv_ld() + g.group(h) * head_dim;
      for (Index i0 = 0; i0 < len; i0 += kBlock) {
        // Rows [i0, i1) against the keys [j0, i1) the forward computed (P is 0 at the others).
        const Index i1 = std::min(len, i0 + kBlock), j0 = scores.first_key(i0);
        const Index block_rows = i1 - i0, keys = i1 - j0;
        const float* pb = p + i0 * len + j0;
        float* db = ds.data() + i0 * len + j0;
        const Index k_off = kv_off + j0 * g.kv_ld();
        // dP = dO V^T
        gemm(false, true, block_rows, keys, head_dim, 1.0f, dout + q_off + i0 * g.q_ld(), g.q_ld(),
             v + k_off, g.kv_ld(), 0.0f, db, len);
        // dS = P * (dP - rowsum(P * dP)); where P is 0 (masked), so is dS
        for (Index i = 0; i < block_rows; ++i) {
          const float* pi = pb + i * len;
          float* di = db + i * len;
          float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
          for (Index j = 0; j < keys; ++j) dot += pi[j] * di[j];
#pragma omp simd
          for (Index j = 0; j < keys; ++j) di[j] = pi[j] * (di[j] - dot);
        }
        if (cap > 0.0f) {  // times the cap's slope at the block's scores, computed as the forward did
          gemm(false, true, block_rows, keys, head_dim, scale, q + q_off + i0 * g.q_ld(), g.q_ld(), k + k_off,
               g.kv_ld(), 0.0f, raw.data(), len);
          for (Index i = 0; i < block_rows; ++i) {
            const float* ri = raw.data() + i * len;
            float* di = db + i * len;
#pragma omp simd
            for (Index j = 0; j <= i0 + i - j0; ++j) di[j] *= cpu::softcap_slope(cpu::softcap(ri[j], cap), cap);
          }
        }
        gemm(false, false, block_rows, head_dim, keys, scale, db, len, k + k_off, g.kv_ld(), 0.0f,
             dq + q_off + i0 * g.q_ld(), g.q_ld());
        gemm(true, false, keys, head_dim, block_rows, scale, db, len, q + q_off + i0 * g.q_ld(), g.q_ld(),
             1.0f, dk + k_off, g.kv_ld());
        gemm(true, false, keys, head_dim, block_rows, 1.0f, pb, len, dout + q_off + i0 * g.q_ld(),
             g.q_ld(), 1.0f, dv + k_off, g.kv_ld());
      }
    }
  }
}

// Mixed precision: the float32 kernels on the widened q, k, v (cpu::widen).
void CpuKernels::attention_forward_bf16(std::uint16_t* out, float* saved, const std::uint16_t* q,
                                        const std::uint16_t* k, const std::uint16_t* v,
                                        const Index* cu_seqlens, Index num_seqs, Index heads,
                                        Index kv_heads, Index head_dim, AttentionScores scores) const {
  const Index rows = cu_seqlens[num_seqs];
  std::vector<float> o(static_cast<std::size_t>(rows * heads * head_dim));
  attention_forward(o.data(), saved, cpu::widen(q, rows * heads * head_dim).data(),
                    cpu::widen(k, rows * kv_heads * head_dim).data(),
                    cpu::widen(v, rows * kv_heads * head_dim).data(), cu_seqlens, num_seqs, heads,
                    kv_heads, head_dim, scores);
  cpu::round_into(out, o);
}

void CpuKernels::attention_backward_bf16(float* dq, float* dk, float* dv, const float* dout,
                                         const std::uint16_t* q, const std::uint16_t* k,
                                         const std::uint16_t* v, const std::uint16_t* /*out*/,
                                         const float* saved, const Index* cu_seqlens,
                                         Index num_seqs, Index heads, Index kv_heads,
                                         Index head_dim, AttentionScores scores) const {
  const Index rows = cu_seqlens[num_seqs];
  attention_backward(dq, dk, dv, dout, cpu::widen(q, rows * heads * head_dim).data(),
                     cpu::widen(k, rows * kv_heads * head_dim).data(),
                     cpu::widen(v, rows * kv_heads * head_dim).data(), saved, cu_seqlens, num_seqs,
                     heads, kv_heads, head_dim, scores);
}

}  // namespace spin::kernels
