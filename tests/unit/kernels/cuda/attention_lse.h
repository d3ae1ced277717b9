// The log-sum-exp a fused attention forward saves per query row and head, derived from
// CpuKernels::attention_forward's probabilities for the emulated kernels' tests: for any key j a
// row sees, log-sum-exp(s) = s_j - log p_j; the row's first key (scores.first_key) is one.
#pragma once

#include <cmath>
#include <vector>

#include "kernels/cpu/vec_math.h"
#include "kernels/kernels.h"

namespace spin::kernels {

// q [rows, heads, head_dim] and k [rows, kv_heads, head_dim] as the CPU read them (float32), the
// packed sequences' offsets `cu`, the scores' scale and cap, and the CPU's probabilities
// ([heads, len, len] per sequence). Returns [rows, heads].
inline std::vector<float> lse_from_cpu_probs(const std::vector<float>& q, const std::vector<float>& k,
                                             const std::vector<long long>& cu, int heads, int kv_heads, int head_dim,
                                             AttentionScores scores, const std::vector<float>& probs) {
  const long long q_w = static_cast<long long>(heads) * head_dim, kv_w = static_cast<long long>(kv_heads) * head_dim;
  std::vector<float> lse(static_cast<std::size_t>(cu.back() * heads));
  std::size_t at = 0;
  for (std::size_t s = 0; s + 1 < cu.size(); ++s) {
    const long long start = cu[s], len = cu[s + 1] - start;
    for (int h = 0; h < heads; ++h, at += static_cast<std::size_t>(len * len)) {
      const int g = h / (heads / kv_heads);
      for (long long i = 0; i < len; ++i) {
        const long long j = scores.first_key(i);
        float dot = 0.0f;
        for (int d = 0; d < head_dim; ++d) {
          dot += q[(start + i) * q_w + h * head_dim + d] * k[(start + j) * kv_w + g * head_dim + d];
        }
        const float sj = scores.softcap > 0.0f ? cpu::softcap(dot * scores.scale, scores.softcap) : dot * scores.scale;
        lse[static_cast<std::size_t>((start + i) * heads + h)] = sj - std::log(probs[at + i * len + j]);
      }
    }
  }
  return lse;
}

}  // namespace spin::kernels
