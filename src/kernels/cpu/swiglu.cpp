// SwiGLU (Shazeer 2020) as in LlamaMLP: out = silu(gate) * up, silu(g) = g * sigmoid(g).
// d silu / dg = s (1 + g (1 - s)) with s = sigmoid(g).
#include "core/dtype.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/vec_math.h"

namespace spin::kernels {

void CpuKernels::swiglu_forward(float* out, const float* gate, const float* up, Index n) const {
#pragma omp simd
  for (Index i = 0; i < n; ++i) {
    const float s = 1.0f / (1.0f + cpu::exp_approx(-gate[i]));
    out[i] = gate[i] * s * up[i];
  }
}

void CpuKernels::swiglu_forward_bf16(std::uint16_t* out, const float* gate, const float* up,
                                     Index n) const {
  for (Index i = 0; i < n; ++i) {
    const float s = 1.0f / (1.0f + cpu::exp_approx(-gate[i]));
    out[i] = f32_to_bf16(gate[i] * s * up[i]);
  }
}

void CpuKernels::swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                                 const float* up, Index n) const {
#pragma omp simd
  for (Index i = 0; i < n; ++i) {
    const float g = gate[i];
    const float s = 1.0f / (1.0f + cpu::exp_approx(-g));
    const float d = dout[i];
    dgate[i] = d * up[i] * s * (1.0f + g * (1.0f - s));
    dup[i] = d * g * s;
  }
}

}  // namespace spin::kernels
