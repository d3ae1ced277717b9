// A mixture of experts' outputs joined and its backward (model/moe.h): row i's k expert outputs
// sit at y's rows slots[i * k + j], grouped by expert; slot -1: an output another rank computes
// (expert parallelism), left out of the sum, its weight's gradient 0 here.
#include "kernels/cpu/cpu_kernels.h"

namespace spin::kernels {

void CpuKernels::moe_combine(float* out, const float* y, const Index* slots, const float* weights, Index n, Index k,
                             Index width) const {
  for (Index i = 0; i < n; ++i) {
    float* o = out + i * width;
    for (Index c = 0; c < width; ++c) o[c] = 0.0f;
    for (Index j = 0; j < k; ++j) {  // in order: the CUDA kernel's sums, the same bits
      if (slots[i * k + j] < 0) continue;
      const float w = weights != nullptr ? weights[i * k + j] : 1.0f;
      const float* v = y + slots[i * k + j] * width;
#pragma omp simd
      for (Index c = 0; c < width; ++c) o[c] += w * v[c];
    }
  }
}

void CpuKernels::moe_combine_backward(float* dy, float* dweights, const float* dout, const float* y, const Index* slots,
                                      const float* weights, Index n, Index k, Index width) const {
  for (Index slot = 0; slot < n * k; ++slot) {
    if (slots[slot] < 0) {
      dweights[slot] = 0.0f;
      continue;
    }
    const float* g = dout + (slot / k) * width;
    const float* v = y + slots[slot] * width;
    float* d = dy + slots[slot] * width;
    const float w = weights[slot];
    float dot = 0.0f;
    for (Index c = 0; c < width; ++c) {
      d[c] = w * g[c];
      dot += g[c] * v[c];
    }
    dweights[slot] = dot;
  }
}

}  // namespace spin::kernels
