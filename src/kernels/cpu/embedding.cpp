// Vocab-parallel embedding lookup and its scatter-add backward.
#include <cstring>

#include "kernels/cpu/cpu_kernels.h"

namespace spin::kernels {

void CpuKernels::embedding_forward(float* out, const std::int32_t* ids, const float* table,
                                   Index n, Index hidden, Index vocab_start, Index rows, float scale) const {
  for (Index i = 0; i < n; ++i) {
    const Index row = ids[i] - vocab_start;
    float* o = out + i * hidden;
    if (row >= 0 && row < rows && scale == 1.0f) {
      std::memcpy(o, table + row * hidden, static_cast<std::size_t>(hidden) * sizeof(float));
    } else if (row >= 0 && row < rows) {
      const float* t = table + row * hidden;
#pragma omp simd
      for (Index j = 0; j < hidden; ++j) o[j] = t[j] * scale;
    } else {
      std::memset(o, 0, static_cast<std::size_t>(hidden) * sizeof(float));
    }
  }
}

void CpuKernels::embedding_backward(float* dtable, const std::int32_t* ids, const float* dout,
                                    Index n, Index hidden, Index vocab_start, Index rows, float scale) const {
  for (Index i = 0; i < n; ++i) {
    const Index row = ids[i] - vocab_start;
    if (row < 0 || row >= rows) continue;
    float* d = dtable + row * hidden;
    const float* g = dout + i * hidden;
#pragma omp simd
    for (Index j = 0; j < hidden; ++j) d[j] += g[j] * scale;
  }
}

}  // namespace spin::kernels
