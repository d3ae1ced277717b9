// LayerNorm (Ba et al. 2016), as torch's nn.LayerNorm computes it in float32: y = xhat w + b,
// xhat = (x - mean) r, r = 1 / sqrt(var + eps), var the biased variance (two passes: the mean, then
// the squared deviations); w and b each optional (OLMo's OlmoLayerNorm has neither, StableLM's
// both). Backward, with g = dy w:
//   dx_j = r (g_j - mean(g) - xhat_j mean(g xhat)),  dw += sum over rows of dy xhat,  db += sum of dy.
// The mean is formed again in the backward, by the same loop, rather than kept. The per-head form
// (Cohere's and StableLM 2 12B's q / k norms) is the same over rows of one head, row i taking the
// weight's row i % heads (w_rows: 1 for the plain norm).
#include <cmath>

#include "kernels/cpu/bf16_buffers.h"
#include "kernels/cpu/cpu_kernels.h"

namespace spin::kernels {

namespace {

using cpu::store;

float row_mean(const float* x, Index dim) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (Index j = 0; j < dim; ++j) sum += x[j];
  return sum / static_cast<float>(dim);
}

template <class Out>
void layernorm_rows(Out* out, float* rstd, const float* x, const float* weights, const float* b, Index n, Index dim,
                    float eps, Index w_rows) {
  for (Index i = 0; i < n; ++i) {
    const float* xi = x + i * dim;
    const float* w = weights != nullptr ? weights + (i % w_rows) * dim : nullptr;
    Out* oi = out + i * dim;
    const float mean = row_mean(xi, dim);
    float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
    for (Index j = 0; j < dim; ++j) ss += (xi[j] - mean) * (xi[j] - mean);
    const float r = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
    rstd[i] = r;
    if (w == nullptr && b == nullptr) {
#pragma omp simd
      for (Index j = 0; j < dim; ++j) store(oi + j, (xi[j] - mean) * r);
      continue;
    }
    for (Index j = 0; j < dim; ++j) {
      store(oi + j, (xi[j] - mean) * r * (w != nullptr ? w[j] : 1.0f) + (b != nullptr ? b[j] : 0.0f));
    }
  }
}

void layernorm_backward_rows(float* dx, float* dweights, float* db, const float* dout, const float* x,
                             const float* weights, const float* rstd, Index n, Index dim, Index w_rows) {
  for (Index i = 0; i < n; ++i) {
    const float* xi = x + i * dim;
    const float* gi = dout + i * dim;
    float* dxi = dx + i * dim;
    const float* w = weights != nullptr ? weights + (i % w_rows) * dim : nullptr;
    float* dw = dweights != nullptr ? dweights + (i % w_rows) * dim : nullptr;
    const float mean = row_mean(xi, dim), r = rstd[i];
    const auto g = [&](Index j) { return w != nullptr ? gi[j] * w[j] : gi[j]; };
    float sum = 0.0f, dot = 0.0f;
#pragma omp simd reduction(+ : sum, dot)
    for (Index j = 0; j < dim; ++j) {
      sum += g(j);
      dot += g(j) * (xi[j] - mean) * r;
    }
    const float a = sum / static_cast<float>(dim), c = dot / static_cast<float>(dim);
#pragma omp simd
    for (Index j = 0; j < dim; ++j) dxi[j] += r * (g(j) - a - (xi[j] - mean) * r * c);
    if (dw != nullptr) {
#pragma omp simd
      for (Index j = 0; j < dim; ++j) dw[j] += gi[j] * (xi[j] - mean) * r;
    }
    if (db != nullptr) {
#pragma omp simd
      for (Index j = 0; j < dim; ++j) db[j] += gi[j];
    }
  }
}

}  // namespace

void CpuKernels::layernorm_forward(float* out, float* rstd, const float* x, const float* w, const float* b, Index n,
                                   Index dim, float eps) const {
  layernorm_rows(out, rstd, x, w, b, n, dim, eps, 1);
}

void CpuKernels::layernorm_forward_bf16(std::uint16_t* out, float* rstd, const float* x, const float* w, const float* b,
                                        Index n, Index dim, float eps) const {
  layernorm_rows(out, rstd, x, w, b, n, dim, eps, 1);
}

void CpuKernels::layernorm_backward(float* dx, float* dw, float* db, const float* dout, const float* x, const float* w,
                                    const float* rstd, Index n, Index dim) const {
  layernorm_backward_rows(dx, dw, db, dout, x, w, rstd, n, dim, 1);
}

void CpuKernels::head_layernorm_forward(float* out, float* rstd, const float* x, const float* w, Index n, Index heads,
                                        Index dim, float eps) const {
  layernorm_rows(out, rstd, x, w, nullptr, n * heads, dim, eps, heads);
}

void CpuKernels::head_layernorm_forward_bf16(std::uint16_t* out, float* rstd, const float* x, const float* w, Index n,
                                             Index heads, Index dim, float eps) const {
  layernorm_rows(out, rstd, x, w, nullptr, n * heads, dim, eps, heads);
}

void CpuKernels::head_layernorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w,
                                         const float* rstd, Index n, Index heads, Index dim) const {
  layernorm_backward_rows(dx, dw, nullptr, dout, x, w, rstd, n * heads, dim, heads);
}

}  // namespace spin::kernels
