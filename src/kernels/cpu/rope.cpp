// Rotary position embedding (Su et al. 2021) in Hugging Face's rotate-half layout: dimension i
// of the first half of a head's rotary_dim rotated dimensions pairs with dimension i + half; the
// dimensions past rotary_dim (a partial rotary factor) pass through. The backward is the inverse
// rotation.
#include "kernels/cpu/bf16_buffers.h"
#include "kernels/cpu/cpu_kernels.h"

namespace spin::kernels {

namespace {
// sign = +1: rotate by +angle (forward); -1: by -angle (backward = transpose of the rotation).
void rotate(float* x, const std::int32_t* positions, const float* cos, const float* sin, Index n,
            Index heads, Index head_dim, Index rotary_dim, float sign) {
  const Index half = rotary_dim / 2;
  for (Index row = 0; row < n; ++row) {
    const float* c = cos + static_cast<Index>(positions[row]) * half;
    const float* s = sin + static_cast<Index>(positions[row]) * half;
    for (Index h = 0; h < heads; ++h) {
      float* lo = x + (row * heads + h) * head_dim;
      float* hi = lo + half;
#pragma omp simd
      for (Index i = 0; i < half; ++i) {
        const float a = lo[i];
        const float b = hi[i];
        lo[i] = a * c[i] - sign * b * s[i];
        hi[i] = b * c[i] + sign * a * s[i];
      }
    }
  }
}
}  // namespace

void CpuKernels::rope_forward(float* x, const std::int32_t* positions, const float* cos,
                              const float* sin, Index n, Index heads, Index head_dim, Index rotary_dim) const {
  rotate(x, positions, cos, sin, n, heads, head_dim, rotary_dim, 1.0f);
}

void CpuKernels::rope_backward(float* dx, const std::int32_t* positions, const float* cos,
                               const float* sin, Index n, Index heads, Index head_dim, Index rotary_dim) const {
  rotate(dx, positions, cos, sin, n, heads, head_dim, rotary_dim, -1.0f);
}

void CpuKernels::rope_forward_bf16(std::uint16_t* x, const std::int32_t* positions,
                                   const float* cos, const float* sin, Index n, Index heads,
                                   Index head_dim, Index rotary_dim) const {
  std::vector<float> wide = cpu::widen(x, n * heads * head_dim);
  rotate(wide.data(), positions, cos, sin, n, heads, head_dim, rotary_dim, 1.0f);
  cpu::round_into(x, wide);
}

}  // namespace spin::kernels
