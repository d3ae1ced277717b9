// RMSNorm (Zhang & Sennrich 2019), as LlamaRMSNorm: y = w * x / sqrt(mean(x^2) + eps), with
// w = w_offset + the stored weight (GemmaRMSNorm's 1 + w; w_offset + w is exact for 0).
// Backward, with r = rstd and c = sum_j(dy_j w_j x_j) / dim:
//   dx_j = r (dy_j w_j - x_j r^2 c),   dw_j = sum_rows dy_j x_j r.
// The *_from_sums / *_from_dots pair is the same norm over rows spread across ranks: the sums
// over j come in, summed over every rank's columns, and dim becomes the rows' whole width.
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

template <class Out>
void rmsnorm_rows_from_sums(Out* out, float* rstd, const float* x, const float* w, const float* sums, Index n,
                            Index dim, Index total, float eps) {
  for (Index i = 0; i < n; ++i) {
    const float r = 1.0f / std::sqrt(sums[i] / static_cast<float>(total) + eps);
    rstd[i] = r;  // after reading sums[i]: the two may be one array
    const float* xi = x + i * dim;
    Out* oi = out + i * dim;
#pragma omp simd
    for (Index j = 0; j < dim; ++j) store(oi + j, xi[j] * r * w[j]);
  }
}

}  // namespace

void CpuKernels::row_dot(float* out, const float* a, const float* b, const float* w, Index n, Index dim) const {
  for (Index i = 0; i < n; ++i) {
    const float* ai = a + i * dim;
    const float* bi = b + i * dim;
    float sum = 0.0f;
    if (w == nullptr) {
#pragma omp simd reduction(+ : sum)
      for (Index j = 0; j < dim; ++j) sum += ai[j] * bi[j];
    } else {
#pragma omp simd reduction(+ : sum)
      for (Index j = 0; j < dim; ++j) sum += ai[j] * w[j] * bi[j];
    }
    out[i] = sum;
  }
}

void CpuKernels::rmsnorm_forward_from_sums(float* out, float* rstd, const float* x, const float* w, const float* sums,
                                           Index n, Index dim, Index total, float eps) const {
  rmsnorm_rows_from_sums(out, rstd, x, w, sums, n, dim, total, eps);
}

void CpuKernels::rmsnorm_forward_from_sums_bf16(std::uint16_t* out, float* rstd, const float* x, const float* w,
                                                const float* sums, Index n, Index dim, Index total, float eps) const {
  rmsnorm_rows_from_sums(out, rstd, x, w, sums, n, dim, total, eps);
}

void CpuKernels::rmsnorm_backward_from_dots(float* dx, float* dw, const float* dout, const float* x, const float* w,
                                            const float* rstd, const float* dots, Index n, Index dim,
                                            Index total) const {
  for (Index i = 0; i < n; ++i) {
    const float* xi = x + i * dim;
    const float* gi = dout + i * dim;
    float* dxi = dx + i * dim;
    const float r = rstd[i];
    const float c = r * r * dots[i] / static_cast<float>(total);
#pragma omp simd
    for (Index j = 0; j < dim; ++j) dxi[j] += r * (gi[j] * w[j] - xi[j] * c);
    if (dw == nullptr) continue;
#pragma omp simd
    for (Index j = 0; j < dim; ++j) dw[j] += gi[j] * xi[j] * r;
  }
}

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
