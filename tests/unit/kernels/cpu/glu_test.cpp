#include <gtest/gtest.h>

#include <cmath>

#include "common/test_util.h"
#include "core/dtype.h"
#include "kernels/cpu/cpu_kernels.h"
#include "unit/kernels/reference.h"

namespace spin::kernels {
namespace {

// act(gate) * up and both gradients (of sum(r * out)) against the double-precision `act` and
// `slope` (its derivative), and against finite differences.
template <class Act, class Slope>
void expect_glu_matches(Activation activation, std::vector<float>& gate, std::vector<float>& up,
                        const std::vector<float>& r, Act act, Slope slope) {
  const CpuKernels k;
  const Index n = static_cast<Index>(gate.size());
  testing::ref::Vec want(n), dgate_ref(n), dup_ref(n);
  for (Index i = 0; i < n; ++i) {
    want[i] = act(gate[i]) * up[i];
    dgate_ref[i] = r[i] * up[i] * slope(gate[i]);
    dup_ref[i] = r[i] * act(gate[i]);
  }
  std::vector<float> out(n);
  k.glu_forward(out.data(), gate.data(), up.data(), n, activation);
  testing::expect_close(out, want, 1e-5, 1e-6, "out");
  std::vector<float> dgate(n), dup(n);
  k.glu_backward(dgate.data(), dup.data(), r.data(), gate.data(), up.data(), n, activation);
  testing::expect_close(dgate, dgate_ref, 1e-5, 1e-6, "dgate");
  testing::expect_close(dup, dup_ref, 1e-5, 1e-6, "dup");
  const auto loss = [&] {
    k.glu_forward(out.data(), gate.data(), up.data(), n, activation);
    return testing::weighted_sum(out, r);
  };
  testing::check_gradient(gate, dgate, loss, 1e-3, 5e-3, 1e-4, "dgate vs finite differences");
  testing::check_gradient(up, dup, loss, 1e-2, 1e-3, 1e-4, "dup vs finite differences");
}

TEST(SwiGlu, ForwardAndBackwardMatchNaiveAndFiniteDifferences) {
  auto gate = testing::random_vector(64, 1, 3.0f);
  auto up = testing::random_vector(64, 2);
  gate[0] = -90.0f;  // far tails: silu -> 0 and silu -> identity
  gate[1] = 40.0f;
  const auto sigmoid = [](double g) { return 1.0 / (1.0 + std::exp(-g)); };
  expect_glu_matches(
      Activation::Silu, gate, up, testing::random_vector(64, 3), [](double g) { return testing::ref::silu(g); },
      [&](double g) { return sigmoid(g) * (1.0 + g * (1.0 - sigmoid(g))); });
}

// GeGLU (Gemma): gelu_pytorch_tanh(gate) * up against the formula in double, far tails
// included (gelu -> 0 and -> identity), and both gradients against finite differences.
TEST(GeGlu, ForwardAndBackwardMatchNaiveAndFiniteDifferences) {
  auto gate = testing::random_vector(64, 21, 4.0f);
  auto up = testing::random_vector(64, 22);
  gate[0] = -90.0f;
  gate[1] = 40.0f;
  gate[2] = -5.0f;  // the left tail, where 1 + tanh(u) would cancel
  const auto r = testing::random_vector(64, 23);
  const double beta = std::sqrt(2.0 / std::acos(-1.0)), kappa = 0.044715;
  const auto t = [&](double g) { return std::tanh(beta * (g + kappa * g * g * g)); };
  expect_glu_matches(
      Activation::GeluTanh, gate, up, r, [&](double g) { return 0.5 * g * (1.0 + t(g)); },
      [&](double g) {
        return 0.5 * (1.0 + t(g)) + 0.5 * g * (1.0 - t(g) * t(g)) * beta * (1.0 + 3.0 * kappa * g * g);
      });
}

// The exact GELU (GPT-NeoX's nn.GELU()), gated and plain (up null: out = gelu(x), GPT-NeoX's MLP):
// against g Phi(g) in double, tails included, its slope Phi(g) + g phi(g), and finite differences;
// the plain form is the gated one with up = 1, bitwise, and leaves nothing to dup.
TEST(Gelu, GatedAndPlainMatchNaiveAndFiniteDifferences) {
  auto gate = testing::random_vector(64, 31, 4.0f);
  auto up = testing::random_vector(64, 32);
  gate[0] = -90.0f;
  gate[1] = 40.0f;
  gate[2] = -5.0f;
  const auto r = testing::random_vector(64, 33);
  const double pi = std::acos(-1.0);
  const auto cdf = [](double g) { return 0.5 * (1.0 + std::erf(g / std::sqrt(2.0))); };
  expect_glu_matches(
      Activation::Gelu, gate, up, r, [&](double g) { return g * cdf(g); },
      [&](double g) { return cdf(g) + g * std::exp(-0.5 * g * g) / std::sqrt(2.0 * pi); });

  const CpuKernels k;
  const Index n = static_cast<Index>(gate.size());
  const std::vector<float> ones(gate.size(), 1.0f);
  std::vector<float> plain(n), gated(n), dplain(n), dgated(n), dones(n);
  k.glu_forward(plain.data(), gate.data(), nullptr, n, Activation::Gelu);
  k.glu_forward(gated.data(), gate.data(), ones.data(), n, Activation::Gelu);
  EXPECT_EQ(plain, gated);
  k.glu_backward(dplain.data(), nullptr, r.data(), gate.data(), nullptr, n, Activation::Gelu);
  k.glu_backward(dgated.data(), dones.data(), r.data(), gate.data(), ones.data(), n, Activation::Gelu);
  EXPECT_EQ(dplain, dgated);
  const auto loss = [&] {
    k.glu_forward(plain.data(), gate.data(), nullptr, n, Activation::Gelu);
    return testing::weighted_sum(plain, r);
  };
  testing::check_gradient(gate, dplain, loss, 1e-3, 5e-3, 1e-4, "plain gelu vs finite differences");
}

// Mixed precision (SwiGLU, GeGLU, the exact GELU's): over bf16 gate and up, the float32 kernels' arithmetic on
// the widened values -- the forward's output rounded to bf16, the backward's gradients float32 --
// bitwise.
TEST(Glu, Bf16InputsGiveTheFloat32KernelsResultsOnTheWidenedValues) {
  const CpuKernels k;
  for (const Activation act : {Activation::Silu, Activation::GeluTanh, Activation::Gelu}) {
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
    k.glu_forward(out.data(), gate_wide.data(), up_wide.data(), n, act);
    k.glu_forward_bf16(out16.data(), gate.data(), up.data(), n, act);
    k.to_bf16(want.data(), out.data(), n);
    EXPECT_EQ(out16, want);

    std::vector<float> dgate(n), dup(n), dgate16(n), dup16(n);
    k.glu_backward(dgate.data(), dup.data(), dout.data(), gate_wide.data(), up_wide.data(), n, act);
    k.glu_backward_bf16(dgate16.data(), dup16.data(), dout.data(), gate.data(), up.data(), n, act);
    EXPECT_EQ(dgate16, dgate);
    EXPECT_EQ(dup16, dup);
    // Plain (up null).
    k.glu_forward(out.data(), gate_wide.data(), nullptr, n, act);
    k.glu_forward_bf16(out16.data(), gate.data(), nullptr, n, act);
    k.to_bf16(want.data(), out.data(), n);
    EXPECT_EQ(out16, want);
    k.glu_backward(dgate.data(), nullptr, dout.data(), gate_wide.data(), nullptr, n, act);
    k.glu_backward_bf16(dgate16.data(), nullptr, dout.data(), gate.data(), nullptr, n, act);
    EXPECT_EQ(dgate16, dgate);
  }
}

}  // namespace
}  // namespace spin::kernels
