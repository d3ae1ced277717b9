// Optimizer arithmetic: the AdamW update (torch.optim.AdamW's single-tensor algorithm) and the
// sum of squares of gradient norms.
#include <cmath>

#include "kernels/cpu/cpu_kernels.h"

namespace spin::kernels {

double CpuKernels::sum_squares(const float* x, Index n) const {
  // In double throughout: float partial sums lose ~1e-4 relative over millions of terms, and
  // the norm decides clipping on every rank alike.
  double total = 0.0;
#pragma omp simd reduction(+ : total)
  for (Index i = 0; i < n; ++i) total += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  return total;
}

void CpuKernels::adamw_update(float* param, const float* grad, float* m, float* v, Index n,
                              const AdamW& h) const {
  const double t = static_cast<double>(h.step);
  const auto bias1 = static_cast<float>(1.0 - std::pow(static_cast<double>(h.beta1), t));
  const auto bias2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(static_cast<double>(h.beta2), t)));
  const float step_size = h.lr / bias1;
  const float decay = 1.0f - h.lr * h.weight_decay;
  const float b1 = h.beta1, b2 = h.beta2, eps = h.eps, scale = h.grad_scale;
#pragma omp simd
  for (Index i = 0; i < n; ++i) {
    const float g = grad[i] * scale;
    const float p = param[i] * decay;
    m[i] = b1 * m[i] + (1.0f - b1) * g;
    v[i] = b2 * v[i] + (1.0f - b2) * g * g;
    param[i] = p - step_size * m[i] / (std::sqrt(v[i]) / bias2_sqrt + eps);
  }
}

}  // namespace spin::kernels
