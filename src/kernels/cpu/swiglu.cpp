// SwiGLU (Shazeer 2020) as in LlamaMLP: out = silu(gate) * up, silu(g) = g * sigmoid(g).
// d silu / dg = s (1 + g (1 - s)) with s = sigmoid(g).
#include "kernels/cpu/bf16_buffers.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/vec_math.h"

namespace spin::kernels {

namespace {

using cpu::load;
using cpu::store;

template <class In, class Out>
void swiglu_values(Out* out, const In* gate, const In* up, Index n) {
#pragma omp simd
  for (Index i = 0; i < n; ++i) {
    const float g = load(gate + i);
    const float s = 1.0f / (1.0f + cpu::exp_approx(-g));
    store(out + i, g * s * load(up + i));
  }
}

template <class In>
void swiglu_gradients(float* dgate, float* dup, const float* dout, const In* gate, const In* up,
                      Index n) {
#pragma omp simd
  for (Index i = 0; i < n; ++i) {
    const float g = load(gate + i);
    const float s = 1.0f / (1.0f + cpu::exp_approx(-g));
    const float d = dout[i];
    dgate[i] = d * load(up + i) * s * (1.0f + g * (1.0f - s));
    dup[i] = d * g * s;
  }
}

}  // namespace

void CpuKernels::swiglu_forward(float* out, const float* gate, const float* up, Index n) const {
  swiglu_values(out, gate, up, n);
}

void CpuKernels::swiglu_forward_bf16(std::uint16_t* out, const std::uint16_t* gate,
                                     const std::uint16_t* up, Index n) const {
  swiglu_values(out, gate, up, n);
}

void CpuKernels::swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                                 const float* up, Index n) const {
  swiglu_gradients(dgate, dup, dout, gate, up, n);
}

void CpuKernels::swiglu_backward_bf16(float* dgate, float* dup, const float* dout,
                                      const std::uint16_t* gate, const std::uint16_t* up,
                                      Index n) const {
  swiglu_gradients(dgate, dup, dout, gate, up, n);
}

}  // namespace spin::kernels
