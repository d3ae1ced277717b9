#include <gtest/gtest.h>

#include <cmath>

#include "common/test_util.h"
#include "core/dtype.h"
#include "kernels/cpu/cpu_kernels.h"
#include "unit/kernels/reference.h"

namespace spin::kernels {
namespace {

TEST(SwiGlu, ForwardAndBackwardMatchNaiveAndFiniteDifferences) {
  const CpuKernels k;
  const int n = 64;
  auto gate = testing::random_vector(n, 1, 3.0f);
  auto up = testing::random_vector(n, 2);
  gate[0] = -90.0f;  // far tails: silu -> 0 and silu -> identity
  gate[1] = 40.0f;
  const auto r = testing::random_vector(n, 3);
  std::vector<float> out(n);
  k.glu_forward(out.data(), gate.data(), up.data(), n, Activation::Silu);
  testing::ref::Vec want(n), dgate_ref(n), dup_ref(n);
  for (int i = 0; i < n; ++i) {
    const double g = gate[i];
    const double s = 1.0 / (1.0 + std::exp(-g));
    want[i] = testing::ref::silu(g) * up[i];
    dgate_ref[i] = r[i] * up[i] * (s + g * s * (1.0 - s));
    dup_ref[i] = r[i] * testing::ref::silu(g);
  }
  testing::expect_close(out, want, 1e-5, 1e-6, "out");
  std::vector<float> dgate(n), dup(n);
  k.glu_backward(dgate.data(), dup.data(), r.data(), gate.data(), up.data(), n, Activation::Silu);
  testing::expect_close(dgate, dgate_ref, 1e-5, 1e-6, "dgate");
  testing::expect_close(dup, dup_ref, 1e-5, 1e-6, "dup");

  const auto loss = [&] {
    k.glu_forward(out.data(), gate.data(), up.data(), n, Activation::Silu);
    return testing::weighted_sum(out, r);
  };
  testing::check_gradient(gate, dgate, loss, 1e-3, 5e-3, 1e-4, "dgate vs finite differences");
  testing::check_gradient(up, dup, loss, 1e-2, 1e-3, 1e-4, "dup vs finite differences");
}

// GeGLU (Gemma): gelu_pytorch_tanh(gate) * up against the formula in double, far tails
// included (gelu -> 0 and -> identity), and both gradients against finite differences.
TEST(GeGlu, ForwardAndBackwardMatchNaiveAndFiniteDifferences) {
  const CpuKernels k;
  const int n = 64;
  auto gate = testing::random_vector(n, 21, 4.0f);
  auto up = testing::random_vector(n, 22);
  gate[0] = -90.0f;
  gate[1] = 40.0f;
  gate[2] = -5.0f;  // the left tail, where 1 + tanh(u) would cancel
  const auto r = testing::random_vector(n, 23);
  const double beta = std::sqrt(2.0 / std::acos(-1.0)), kappa = 0.044715;
  testing::ref::Vec want(n), dgate_ref(n), dup_ref(n);
  for (int i = 0; i < n; ++i) {
    const double g = gate[i];
    const double t = std::tanh(beta * (g + kappa * g * g * g));
    const double gelu = 0.5 * g * (1.0 + t);
    const double slope = 0.5 * (1.0 + t) + 0.5 * g * (1.0 - t * t) * beta * (1.0 + 3.0 * kappa * g * g);
    want[i] = gelu * up[i];
    dgate_ref[i] = r[i] * up[i] * slope;
    dup_ref[i] = r[i] * gelu;
  }
  std::vector<float> out(n);
  k.glu_forward(out.data(), gate.data(), up.data(), n, Activation::GeluTanh);
  testing::expect_close(out, want, 1e-5, 1e-6, "out");
  std::vector<float> dgate(n), dup(n);
  k.glu_backward(dgate.data(), dup.data(), r.data(), gate.data(), up.data(), n, Activation::GeluTanh);
  testing::expect_close(dgate, dgate_ref, 1e-5, 1e-6, "dgate");
  testing::expect_close(dup, dup_ref, 1e-5, 1e-6, "dup");

  const auto loss = [&] {
    k.glu_forward(out.data(), gate.data(), up.data(), n, Activation::GeluTanh);
    return testing::weighted_sum(out, r);
  };
  testing::check_gradient(gate, dgate, loss, 1e-3, 5e-3, 1e-4, "dgate vs finite differences");
  testing::check_gradient(up, dup, loss, 1e-2, 1e-3, 1e-4, "dup vs finite differences");

  // bf16 gate and up: the float32 kernels' arithmetic on the widened values.
  std::vector<std::uint16_t> gate16(n), up16(n), out16(n), want16(n);
  k.to_bf16(gate16.data(), gate.data(), n);
  k.to_bf16(up16.data(), up.data(), n);
  std::vector<float> gate_wide(n), up_wide(n);
  for (int i = 0; i < n; ++i) gate_wide[i] = bf16_to_f32(gate16[i]), up_wide[i] = bf16_to_f32(up16[i]);
  k.glu_forward(out.data(), gate_wide.data(), up_wide.data(), n, Activation::GeluTanh);
  k.glu_forward_bf16(out16.data(), gate16.data(), up16.data(), n, Activation::GeluTanh);
  k.to_bf16(want16.data(), out.data(), n);
  EXPECT_EQ(out16, want16);
  std::vector<float> dgate16(n), dup16(n);
  k.glu_backward(dgate.data(), dup.data(), r.data(), gate_wide.data(), up_wide.data(), n, Activation::GeluTanh);
  k.glu_backward_bf16(dgate16.data(), dup16.data(), r.data(), gate16.data(), up16.data(), n, Activation::GeluTanh);
  EXPECT_EQ(dgate16, dgate);
  EXPECT_EQ(dup16, dup);
}

// Mixed precision: over bf16 gate and up, the float32 kernels' arithmetic on the widened
// values -- the forward's output rounded to bf16, the backward's gradients float32 -- bitwise.
TEST(SwiGlu, Bf16InputsGiveTheFloat32KernelsResultsOnTheWidenedValues) {
  const CpuKernels k;
  const Index n = 1001;
  const auto gate32 = testing::random_vector(n, 6, 6.0f), up32 = testing::random_vector(n, 7);
  const auto dout = testing::random_vector(n, 8);
  std::vector<std::uint16_t> gate(n), up(n);
  k.to_bf16(gate.data(), gate32.data(), n);
  k.to_bf16(up.data(), up32.data(), n);
  std::vector<float> gate_wide(n), up_wide(n);
  for (Index i = 0; i < n; ++i) gate_wide[i] = bf16_to_f32(gate[i]), up_wide[i] = bf16_to_f32(up[i]);

  std::vector<float> out(n);
  std::vector<std::uint16_t> out16(n), want(n);
  k.glu_forward(out.data(), gate_wide.data(), up_wide.data(), n, Activation::Silu);
  k.glu_forward_bf16(out16.data(), gate.data(), up.data(), n, Activation::Silu);
  k.to_bf16(want.data(), out.data(), n);
  EXPECT_EQ(out16, want);

  std::vector<float> dgate(n), dup(n), dgate16(n), dup16(n);
  k.glu_backward(dgate.data(), dup.data(), dout.data(), gate_wide.data(), up_wide.data(), n, Activation::Silu);
  k.glu_backward_bf16(dgate16.data(), dup16.data(), dout.data(), gate.data(), up.data(), n, Activation::Silu);
  EXPECT_EQ(dgate16, dgate);
  EXPECT_EQ(dup16, dup);
}

}  // namespace
}  // namespace spin::kernels
