// Rotary position embedding (Su et al. 2021): pair i of a head's rotary_dim rotated dimensions
// turns by positions[row] * inv_freq[i] -- in Hugging Face's rotate-half layout dimensions i and
// i + half, interleaved (Cohere's) dimensions 2i and 2i + 1; the dimensions past rotary_dim (a
// partial rotary factor) pass through. The backward is the inverse rotation.
#include "kernels/cpu/bf16_buffers.h"
#include "kernels/cpu/cpu_kernels.h"

namespace spin::kernels {

namespace {
// One head's `half` pairs (lo[i Step], hi[i Step]) by the row's cos / sin: Step 1 with hi = lo + half
// (rotate-half), Step 2 with hi = lo + 1 (interleaved) -- a constant stride, so the loop vectorises.
template <Index Step>
void rotate_head(float* lo, float* hi, const float* c, const float* s, Index half, float sign) {
#pragma omp simd
  for (Index i = 0; i < half; ++i) {
    const float a = lo[i * Step];
    const float b = hi[i * Step];
    lo[i * Step] = a * c[i] - sign * b * s[i];
    hi[i * Step] = b * c[i] + sign * a * s[i];
  }
}

// sign = +1: rotate by +angle (forward); -1: by -angle (backward = transpose of the rotation).
void rotate(float* x, const std::int32_t* positions, const float* cos, const float* sin, Index n, Index heads,
            Index head_dim, Index rotary_dim, RopePairs pairs, float sign) {
  const Index half = rotary_dim / 2;
  const bool interleaved = pairs == RopePairs::Interleaved;
  for (Index row = 0; row < n; ++row) {
    const float* c = cos + static_cast<Index>(positions[row]) * half;
    const float* s = sin + static_cast<Index>(positions[row]) * half;
    for (Index h = 0; h < heads; ++h) {
      float* lo = x + (row * heads + h) * head_dim;
      if (interleaved) {
        rotate_head<2>(lo, lo + 1, c, s, half, sign);
      } else {
        rotate_head<1>(lo, lo + half, c, s, half, sign);
      }
    }
  }
}
}  // namespace

void CpuKernels::rope_forward(float* x, const std::int32_t* positions, const float* cos, const float* sin, Index n,
                              Index heads, Index head_dim, Index rotary_dim, RopePairs pairs) const {
  rotate(x, positions, cos, sin, n, heads, head_dim, rotary_dim, pairs, 1.0f);
}

void CpuKernels::rope_backward(float* dx, const std::int32_t* positions, const float* cos, const float* sin, Index n,
                               Index heads, Index head_dim, Index rotary_dim, RopePairs pairs) const {
  rotate(dx, positions, cos, sin, n, heads, head_dim, rotary_dim, pairs, -1.0f);
}

void CpuKernels::rope_forward_bf16(std::uint16_t* x, const std::int32_t* positions, const float* cos, const float* sin,
                                   Index n, Index heads, Index head_dim, Index rotary_dim, RopePairs pairs) const {
  std::vector<float> wide = cpu::widen(x, n * heads * head_dim);
  rotate(wide.data(), positions, cos, sin, n, heads, head_dim, rotary_dim, pairs, 1.0f);
  cpu::round_into(x, wide);
}

}  // namespace spin::kernels
