// The gated MLP's activation, out = act(gate) * up: SwiGLU (Shazeer 2020, LlamaMLP) with
// silu(g) = g * sigmoid(g), d silu / dg = s (1 + g (1 - s)) for s = sigmoid(g); GeGLU (GemmaMLP)
// with PyTorch's tanh approximation of GELU, gelu(g) = g / 2 * (1 + tanh(u)) for
// u = sqrt(2 / pi) (g + 0.044715 g^3). Written as (1 + tanh(u)) / 2 = sigmoid(2u) = s, so that
// the tails keep their relative precision (1 + tanh(u) cancels for u << 0): gelu(g) = g s and
// d gelu / dg = s + 2 g s (1 - s) u'(g), with 1 - s = s e^-2u and
// u'(g) = sqrt(2 / pi) (1 + 3 * 0.044715 g^2). The exact GELU (GPT-NeoX's plain MLP):
// gelu(g) = g Phi(g), Phi(g) = (1 + erf(g / sqrt(2))) / 2, d gelu / dg = Phi(g) + g phi(g) with
// phi(g) = e^(-g^2 / 2) / sqrt(2 pi). Without up (a plain MLP) out = act(g), dgate = d act'(g).
#include "kernels/cpu/bf16_buffers.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/vec_math.h"

namespace spin::kernels {

namespace {

using cpu::load;
using cpu::store;

constexpr float kGeluBeta = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluKappa = 0.044715f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;  // 1 / sqrt(2 pi)

// act(g) * up and its gradients for d = d out, as functors the simd loops inline.
struct Silu {
  static float value(float g, float up) {
    const float s = 1.0f / (1.0f + cpu::exp_approx(-g));
    return g * s * up;
  }
  static void gradients(float g, float up, float d, float& dgate, float& dup) {
    const float s = 1.0f / (1.0f + cpu::exp_approx(-g));
    dgate = d * up * s * (1.0f + g * (1.0f - s));
    dup = d * g * s;
  }
};
struct GeluTanh {
  // e^-2u (exp_approx saturates instead of overflowing).
  static float exp_minus_2u(float g) { return cpu::exp_approx(-2.0f * kGeluBeta * (g + kGeluKappa * (g * g * g))); }
  static float value(float g, float up) { return g / (1.0f + exp_minus_2u(g)) * up; }
  static void gradients(float g, float up, float d, float& dgate, float& dup) {
    const float e = exp_minus_2u(g);
    const float s = 1.0f / (1.0f + e);
    const float slope = s + 2.0f * g * s * (s * e) * kGeluBeta * (1.0f + 3.0f * kGeluKappa * g * g);
    dgate = d * up * slope;
    dup = d * (g * s);
  }
};

struct Gelu {  // Phi through cpu::normal_cdf_approx (libm's erff does not vectorise)
  static float value(float g, float up) { return g * cpu::normal_cdf_approx(g) * up; }
  static void gradients(float g, float up, float d, float& dgate, float& dup) {
    const float phi_cdf = cpu::normal_cdf_approx(g);
    const float slope = phi_cdf + g * kInvSqrt2Pi * cpu::exp_approx(-0.5f * g * g);
    dgate = d * up * slope;
    dup = d * (g * phi_cdf);
  }
};

template <class Act, class In, class Out>
void glu_values(Out* out, const In* gate, const In* up, Index n) {
  if (up == nullptr) {
#pragma omp simd
    for (Index i = 0; i < n; ++i) store(out + i, Act::value(load(gate + i), 1.0f));
    return;
  }
#pragma omp simd
  for (Index i = 0; i < n; ++i) store(out + i, Act::value(load(gate + i), load(up + i)));
}

template <class Act, class In>
void glu_gradients(float* dgate, float* dup, const float* dout, const In* gate, const In* up, Index n) {
  if (up == nullptr) {
#pragma omp simd
    for (Index i = 0; i < n; ++i) {
      float unused;
      Act::gradients(load(gate + i), 1.0f, dout[i], dgate[i], unused);
    }
    return;
  }
#pragma omp simd
  for (Index i = 0; i < n; ++i) Act::gradients(load(gate + i), load(up + i), dout[i], dgate[i], dup[i]);
}

template <class In, class Out>
void glu_values(Out* out, const In* gate, const In* up, Index n, Activation act) {
  switch (act) {
    case Activation::Silu: return glu_values<Silu>(out, gate, up, n);
    case Activation::GeluTanh: return glu_values<GeluTanh>(out, gate, up, n);
    case Activation::Gelu: return glu_values<Gelu>(out, gate, up, n);
  }
}

template <class In>
void glu_gradients(float* dgate, float* dup, const float* dout, const In* gate, const In* up, Index n,
                   Activation act) {
  switch (act) {
    case Activation::Silu: return glu_gradients<Silu>(dgate, dup, dout, gate, up, n);
    case Activation::GeluTanh: return glu_gradients<GeluTanh>(dgate, dup, dout, gate, up, n);
    case Activation::Gelu: return glu_gradients<Gelu>(dgate, dup, dout, gate, up, n);
  }
}

}  // namespace

void CpuKernels::glu_forward(float* out, const float* gate, const float* up, Index n, Activation act) const {
  glu_values(out, gate, up, n, act);
}

void CpuKernels::glu_forward_bf16(std::uint16_t* out, const std::uint16_t* gate, const std::uint16_t* up, Index n,
                                  Activation act) const {
  glu_values(out, gate, up, n, act);
}

void CpuKernels::glu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                              Index n, Activation act) const {
  glu_gradients(dgate, dup, dout, gate, up, n, act);
}

void CpuKernels::glu_backward_bf16(float* dgate, float* dup, const float* dout, const std::uint16_t* gate,
                                   const std::uint16_t* up, Index n, Activation act) const {
  glu_gradients(dgate, dup, dout, gate, up, n, act);
}

}  // namespace spin::kernels
