// Causal grouped-query self-attention over packed sequences, one (sequence, head) at a time:
//   S = c(scale Q K^T) (causal: j <= i),  P = softmax_rows(S),  O = P V,
// scale and the cap c as kernels::AttentionScores (c(x) = cap tanh(x / cap), or none).
// Backward (P saved):  dP = dO V^T,  dS = P * (dP - rowsum(P * dP)) * c'  (c' from the scores
// computed again: 1 - (S / cap)^2; 1 without a cap),
//   dQ = scale dS K,  dK += scale dS^T Q,  dV += P^T dO   (+= over the query heads of a group).
// The matrix products go through sgemm with the heads' strides as leading dimensions, one block
// of kBlock query rows at a time: rows [i0, i1) only need keys [0, i1), which skips most of the
// masked upper triangle (62% of the full work at 256 tokens instead of 100%).
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

// Row-wise causal softmax of the [len, len] scores in place, capped first (softcap > 0); entries
// above the diagonal -> 0.
void causal_softmax(float* p, Index len, float softcap) {
  for (Index i = 0; i < len; ++i) cpu::softmax_row(p + i * len, i + 1, len, softcap);
}
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
        const Index i1 = std::min(len, i0 + kBlock);
        gemm(false, true, i1 - i0, i1, head_dim, scale, qh + i0 * g.q_ld(), g.q_ld(), kh,
             g.kv_ld(), 0.0f, p + i0 * len, len);
      }
      causal_softmax(p, len, scores.softcap);
      for (Index i0 = 0; i0 < len; i0 += kBlock) {
        const Index i1 = std::min(len, i0 + kBlock);
        gemm(false, false, i1 - i0, head_dim, i1, 1.0f, p + i0 * len, len, vh, g.kv_ld(), 0.0f,
             out + (start + i0) * g.q_ld() + h * head_dim, g.q_ld());
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
        const Index i1 = std::min(len, i0 + kBlock);
        const Index block_rows = i1 - i0;
        const float* pb = p + i0 * len;
        float* db = ds.data() + i0 * len;
        // dP = dO V^T, keys [0, i1) only
        gemm(false, true, block_rows, i1, head_dim, 1.0f, dout + q_off + i0 * g.q_ld(), g.q_ld(),
             v + kv_off, g.kv_ld(), 0.0f, db, len);
        // dS = P * (dP - rowsum(P * dP)); P is 0 above the diagonal, so is dS
        for (Index i = 0; i < block_rows; ++i) {
          const float* pi = pb + i * len;
          float* di = db + i * len;
          float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
          for (Index j = 0; j < i1; ++j) dot += pi[j] * di[j];
#pragma omp simd
          for (Index j = 0; j < i1; ++j) di[j] = pi[j] * (di[j] - dot);
        }
        if (cap > 0.0f) {  // times the cap's slope at the block's scores, computed as the forward did
          gemm(false, true, block_rows, i1, head_dim, scale, q + q_off + i0 * g.q_ld(), g.q_ld(), k + kv_off,
               g.kv_ld(), 0.0f, raw.data(), len);
          for (Index i = 0; i < block_rows; ++i) {
            const float* ri = raw.data() + i * len;
            float* di = db + i * len;
#pragma omp simd
            for (Index j = 0; j <= i0 + i; ++j) di[j] *= cpu::softcap_slope(cpu::softcap(ri[j], cap), cap);
          }
        }
        gemm(false, false, block_rows, head_dim, i1, scale, db, len, k + kv_off, g.kv_ld(), 0.0f,
             dq + q_off + i0 * g.q_ld(), g.q_ld());
        gemm(true, false, i1, head_dim, block_rows, scale, db, len, q + q_off + i0 * g.q_ld(), g.q_ld(),
             1.0f, dk + kv_off, g.kv_ld());
        gemm(true, false, i1, head_dim, block_rows, 1.0f, pb, len, dout + q_off + i0 * g.q_ld(),
             g.q_ld(), 1.0f, dv + kv_off, g.kv_ld());
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
