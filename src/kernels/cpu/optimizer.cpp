// Optimizer arithmetic over ranges of flat buffers: the AdamW and RMSprop updates
// (torch.optim.AdamW's and torch.optim.RMSprop's single-tensor algorithms, range by range) and
// the sum of squares behind gradient norms.
#include <cmath>
#include <span>

#include "core/dtype.h"
#include "kernels/cpu/cpu_kernels.h"

namespace spin::kernels {

namespace {

// sum_i x_i^2 in double throughout: float partial sums lose ~1e-4 relative over millions of
// terms, and the norm decides clipping on every rank alike.
double sum_squares_of(const float* x, Index n) {
  double total = 0.0;
#pragma omp simd reduction(+ : total)
  for (Index i = 0; i < n; ++i) total += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  return total;
}

}  // namespace

double CpuKernels::sum_squares(const float* x, const Range* ranges, Index count) const {
  double total = 0.0;
  for (Index i = 0; i < count; ++i) total += sum_squares_of(x + ranges[i].offset, ranges[i].length);
  return total;
}

void CpuKernels::adamw_update(float* param, std::uint16_t* param_bf16, const float* grad, float* m,
                              float* v, const UpdateRange* ranges, Index count, const AdamW& h) const {
  const float step_size = h.step_size(), bias2_sqrt = h.bias2_sqrt();
  const float b1 = h.beta1, b2 = h.beta2, eps = h.eps, scale = h.grad_scale;
  for (const UpdateRange& r : std::span(ranges, static_cast<std::size_t>(count))) {
    const float decay = r.decay ? h.decay() : 1.0f;
    float* p = param + r.offset;
    float* mr = m + r.offset;
    float* vr = v + r.offset;
    const float* g = grad + r.offset;
#pragma omp simd
    for (Index i = 0; i < r.length; ++i) {
      const float gi = g[i] * scale;
      const float pi = p[i] * decay;
      mr[i] = b1 * mr[i] + (1.0f - b1) * gi;
      vr[i] = b2 * vr[i] + (1.0f - b2) * gi * gi;
      p[i] = pi - step_size * mr[i] / (std::sqrt(vr[i]) / bias2_sqrt + eps);
    }
    if (param_bf16 != nullptr) {
      std::uint16_t* out = param_bf16 + r.offset;
      for (Index i = 0; i < r.length; ++i) out[i] = f32_to_bf16(p[i]);
    }
  }
}

void CpuKernels::rmsprop_update(float* param, std::uint16_t* param_bf16, const float* grad, float* v,
                                const UpdateRange* ranges, Index count, const RmsProp& h) const {
  const float alpha = h.alpha, eps = h.eps, lr = h.lr, scale = h.grad_scale;
  for (const UpdateRange& r : std::span(ranges, static_cast<std::size_t>(count))) {
    const float wd = r.decay ? h.weight_decay : 0.0f;
    float* p = param + r.offset;
    float* vr = v + r.offset;
    const float* g = grad + r.offset;
#pragma omp simd
    for (Index i = 0; i < r.length; ++i) {
      const float gi = g[i] * scale + wd * p[i];
      vr[i] = alpha * vr[i] + (1.0f - alpha) * gi * gi;
      p[i] -= lr * gi / (std::sqrt(vr[i]) + eps);
    }
    if (param_bf16 != nullptr) {
      std::uint16_t* out = param_bf16 + r.offset;
      for (Index i = 0; i < r.length; ++i) out[i] = f32_to_bf16(p[i]);
    }
  }
}

}  // namespace spin::kernels
