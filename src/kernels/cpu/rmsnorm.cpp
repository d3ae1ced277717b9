// RMSNorm (Zhang & Sennrich 2019), as LlamaRMSNorm: y = w * x / sqrt(mean(x^2) + eps), with
// w = w_offset + the stored weight (GemmaRMSNorm's 1 + w; w_offset + w is exact for 0).
// Backward, with r = rstd and c = sum_j(dy_j w_j x_j) / dim:
//   dx_j = r (dy_j w_j - x_j r^2 c),   dw_j = sum_rows dy_j x_j r.
#include <cmath>

#include "kernels/cpu/bf16_buffers.h"
#include "kernels/cpu/cpu_kernels.h"

namespace spin::kernels {

namespace {

using cpu::store;

template <class Out>
void rmsnorm_rows(Out* out, float* rstd, const float* x, const float* w, Index n, Index dim,
                  float eps, float w_offset) {
  for (Index i = 0; i < n; ++i) {
    const float* xi = x + i * dim;
    Out* oi = out + i * dim;
    float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
    for (Index j = 0; j < dim; ++j) ss += xi[j] * xi[j];
    const float r = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
    rstd[i] = r;
#pragma omp simd
    for (Index j = 0; j < dim; ++j) store(oi + j, xi[j] * r * (w_offset + w[j]));
  }
}

}  // namespace

void CpuKernels::rmsnorm_forward(float* out, float* rstd, const float* x, const float* w,
                                 Index n, Index dim, float eps, float w_offset) const {
  rmsnorm_rows(out, rstd, x, w, n, dim, eps, w_offset);
}

void CpuKernels::rmsnorm_forward_bf16(std::uint16_t* out, float* rstd, const float* x,
                                      const float* w, Index n, Index dim, float eps, float w_offset) const {
  rmsnorm_rows(out, rstd, x, w, n, dim, eps, w_offset);
}

// bf16 x: widened (exact), then the float32 kernels.
void CpuKernels::rmsnorm_forward_bf16_in(std::uint16_t* out, float* rstd, const std::uint16_t* x, const float* w,
                                         Index n, Index dim, float eps, float w_offset) const {
  rmsnorm_rows(out, rstd, cpu::widen(x, n * dim).data(), w, n, dim, eps, w_offset);
}

void CpuKernels::rmsnorm_backward_bf16_in(float* dx, float* dw, const float* dout, const std::uint16_t* x,
                                          const float* w, const float* rstd, Index n, Index dim, float w_offset) const {
  rmsnorm_backward(dx, dw, dout, cpu::widen(x, n * dim).data(), w, rstd, n, dim, w_offset);
}

void CpuKernels::rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x,
                                  const float* w, const float* rstd, Index n, Index dim, float w_offset) const {
  for (Index i = 0; i < n; ++i) {
    const float* xi = x + i * dim;
    const float* gi = dout + i * dim;
    float* dxi = dx + i * dim;
    const float r = rstd[i];
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (Index j = 0; j < dim; ++j) dot += gi[j] * (w_offset + w[j]) * xi[j];
    const float c = r * r * dot / static_cast<float>(dim);
#pragma omp simd
    for (Index j = 0; j < dim; ++j) {
      dxi[j] += r * (gi[j] * (w_offset + w[j]) - xi[j] * c);
      dw[j] += gi[j] * xi[j] * r;
    }
  }
}

}  // namespace spin::kernels
