#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "common/test_util.h"
#include "core/dtype.h"
#include "kernels/cpu/cpu_kernels.h"
#include "unit/kernels/reference.h"

namespace spin::kernels {
namespace {

using testing::expect_close;
using testing::random_vector;
using testing::to_double;

// All four transpose cases, leading dimensions wider than the matrices, alpha and beta.
TEST(Gemm, MatchesNaiveDoubleForEveryTransposeCase) {
  const CpuKernels k;
  const int m = 7, n = 5, kk = 9;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const int lda = (ta ? m : kk) + 3;
      const int ldb = (tb ? kk : n) + 2;
      const int ldc = n + 4;
      const auto a = random_vector(static_cast<std::size_t>((ta ? kk : m) * lda), 1);
      const auto b = random_vector(static_cast<std::size_t>((tb ? n : kk) * ldb), 2);
      auto c = random_vector(static_cast<std::size_t>(m * ldc), 3);
      auto expected = to_double(c);
      k.gemm(ta, tb, m, n, kk, 0.7f, a.data(), lda, b.data(), ldb, 0.3f, c.data(), ldc);
      testing::ref::gemm(ta, tb, m, n, kk, 0.7, to_double(a), lda, to_double(b), ldb, 0.3,
                         expected, ldc);
      expect_close(c, expected, 1e-5, 1e-5, ta ? (tb ? "TT" : "TN") : (tb ? "NT" : "NN"));
    }
  }
}

TEST(Linear, ForwardAndBackwardMatchNaiveAndFiniteDifferences) {
  const CpuKernels k;
  const int n = 6, in = 5, out = 4;
  auto x = random_vector(n * in, 4);
  auto w = random_vector(out * in, 5);
  const auto r = random_vector(n * out, 6);  // loss = sum(r * y)
  std::vector<float> y(n * out);
  k.linear_forward(y.data(), x.data(), w.data(), n, in, out);
  std::vector<double> y_ref(n * out, 0.0);
  testing::ref::gemm(false, true, n, out, in, 1.0, to_double(x), in, to_double(w), in, 0.0, y_ref,
                     out);
  expect_close(y, y_ref, 1e-5, 1e-6, "y");

  std::vector<float> dx(n * in, 100.0f);  // overwritten (accumulate_dx = false)
  std::vector<float> dw(out * in, 0.5f);  // accumulated into
  k.linear_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), n, in, out, false);
  std::vector<double> dx_ref(n * in, 0.0), dw_ref(out * in, 0.5);
  testing::ref::gemm(false, false, n, in, out, 1.0, to_double(r), out, to_double(w), in, 0.0,
                     dx_ref, in);
  testing::ref::gemm(true, false, out, in, n, 1.0, to_double(r), out, to_double(x), in, 1.0,
                     dw_ref, in);
  expect_close(dx, dx_ref, 1e-5, 1e-6, "dx");
  expect_close(dw, dw_ref, 1e-5, 1e-6, "dw");

  // Finite differences of loss = sum(r * (x W^T)) (linear, so only float rounding matters).
  const auto loss = [&] {
    k.linear_forward(y.data(), x.data(), w.data(), n, in, out);
    return testing::weighted_sum(y, r);
  };
  std::vector<float> dw_only(out * in, 0.0f);
  k.linear_backward(dx.data(), dw_only.data(), r.data(), x.data(), w.data(), n, in, out, false);
  testing::check_gradient(x, dx, loss, 1e-2, 1e-3, 1e-4, "dx vs finite differences");
  testing::check_gradient(w, dw_only, loss, 1e-2, 1e-3, 1e-4, "dw vs finite differences");

  // accumulate_dx adds to what dx holds.
  std::vector<float> dx_acc(n * in, 1.0f);
  k.linear_backward(dx_acc.data(), dw_only.data(), r.data(), x.data(), w.data(), n, in, out, true);
  for (std::size_t i = 0; i < dx.size(); ++i) EXPECT_FLOAT_EQ(dx_acc[i], dx[i] + 1.0f);
}

// Mixed precision: the operands (x, W, and the output gradient) rounded to bf16 (round to
// nearest even, as torch's .to(torch.bfloat16)), products and sums exact in double here; the
// kernel's float32 accumulation of the same bf16 values is within float32 rounding of that.
TEST(Linear, Bf16OperandsMatchNaiveDoubleOfTheRoundedValues) {
  const CpuKernels k;
  const int n = 6, in = 40, out = 9;
  const auto x = random_vector(n * in, 14), w = random_vector(out * in, 15), r = random_vector(n * out, 16);
  std::vector<std::uint16_t> x16(n * in), w16(out * in), r16(n * out);
  k.to_bf16(x16.data(), x.data(), n * in);
  k.to_bf16(w16.data(), w.data(), out * in);
  const auto widen = [](const std::vector<std::uint16_t>& v) {
    std::vector<double> d(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) d[i] = bf16_to_f32(v[i]);
    return d;
  };
  // The rounding is the exact one: 1 + 2^-8 is a tie and goes to the even 1.0; 1 + 3 * 2^-8
  // goes up to 1 + 2^-6.
  std::uint16_t tie = 0, up = 0;
  const float tie_value = 1.0f + 0x1p-8f, up_value = 1.0f + 0x3p-8f;
  k.to_bf16(&tie, &tie_value, 1);
  k.to_bf16(&up, &up_value, 1);
  EXPECT_EQ(bf16_to_f32(tie), 1.0f);
  EXPECT_EQ(bf16_to_f32(up), 1.0f + 0x1p-6f);

  std::vector<float> y(n * out);
  k.linear_forward_bf16(y.data(), x16.data(), w16.data(), n, in, out);
  std::vector<double> y_ref(n * out, 0.0);
  testing::ref::gemm(false, true, n, out, in, 1.0, widen(x16), in, widen(w16), in, 0.0, y_ref, out);
  expect_close(y, y_ref, 1e-5, 1e-6, "y");
  // With a bf16 output: the float32 result, rounded as written.
  std::vector<std::uint16_t> y16(n * out), y16_want(n * out);
  k.linear_forward_bf16_out(y16.data(), x16.data(), w16.data(), nullptr, n, in, out);
  k.to_bf16(y16_want.data(), y.data(), n * out);
  EXPECT_EQ(y16, y16_want);
  // With a bias: added to the float32 result before the one rounding.
  std::vector<float> bias(out), y_biased = y;
  for (std::size_t j = 0; j < bias.size(); ++j) bias[j] = 0.25f * static_cast<float>(j) - 3.0f;
  for (std::size_t e = 0; e < y_biased.size(); ++e) y_biased[e] += bias[e % out];
  k.linear_forward_bf16_out(y16.data(), x16.data(), w16.data(), bias.data(), n, in, out);
  k.to_bf16(y16_want.data(), y_biased.data(), n * out);
  EXPECT_EQ(y16, y16_want);

  std::vector<float> dx(n * in, 100.0f), dw(out * in, 0.5f);
  k.linear_backward_bf16(dx.data(), dw.data(), r.data(), r16.data(), x16.data(), w16.data(), n, in, out, false);
  std::vector<std::uint16_t> r16_want(n * out);
  k.to_bf16(r16_want.data(), r.data(), n * out);
  EXPECT_EQ(r16, r16_want) << "dy16 holds bf16(dy)";
  std::vector<double> dx_ref(n * in, 0.0), dw_ref(out * in, 0.5);
  testing::ref::gemm(false, false, n, in, out, 1.0, widen(r16), out, widen(w16), in, 0.0, dx_ref, in);
  testing::ref::gemm(true, false, out, in, n, 1.0, widen(r16), out, widen(x16), in, 1.0, dw_ref, in);
  expect_close(dx, dx_ref, 1e-5, 1e-6, "dx");
  expect_close(dw, dw_ref, 1e-5, 1e-6, "dw");
}

TEST(CpuMatmul, BiasAddsToEveryRowAndItsGradientSumsTheColumns) {
  CpuKernels k;
  const Index n = 5, width = 3;
  std::vector<float> y(n * width), dy(n * width);
  for (Index e = 0; e < n * width; ++e) {
    y[e] = static_cast<float>(e);
    dy[e] = static_cast<float>(e % width + 1) * static_cast<float>(e / width + 1);
  }
  const std::vector<float> bias = {0.5f, -1.0f, 2.0f};
  k.add_bias(y.data(), bias.data(), n, width);
  for (Index e = 0; e < n * width; ++e) EXPECT_EQ(y[e], static_cast<float>(e) + bias[e % width]) << e;
  // Accumulates: 1 + (1 + 2 + 3 + 4 + 5) * (j + 1).
  std::vector<float> dbias(width, 1.0f);
  k.bias_backward(dbias.data(), dy.data(), n, width);
  EXPECT_EQ(dbias, (std::vector<float>{16.0f, 31.0f, 46.0f}));
}

// Granite's multipliers: y = alpha x, one rounding of the float32 product, written elsewhere or
// in place; every element (an odd count, past any vector width).
TEST(CpuMatmul, ScaleMultipliesEveryValueOnce) {
  CpuKernels k;
  const Index n = 37;
  const auto x = random_vector(n, 7);
  std::vector<float> y(n, NAN);
  k.scale(y.data(), x.data(), 0.22f, n);
  for (Index i = 0; i < n; ++i) EXPECT_EQ(y[i], 0.22f * x[i]) << i;
  auto z = x;
  k.scale(z.data(), z.data(), 1.0f / 16.0f, n);
  for (Index i = 0; i < n; ++i) EXPECT_EQ(z[i], x[i] / 16.0f) << i;  // a power of two: exactly a division
}

// OLMo 1.7's clip_qkv, as torch.clamp: values past the bound set to it, the bounds themselves and
// NaN kept; the gradient passes where the input lies within the bounds, the bounds included
// (torch's clamp_backward), and is 0 past them; in bf16 the same values exactly, in place.
TEST(CpuMatmul, ClampAndItsGradientAsTorchClamp) {
  CpuKernels k;
  const std::vector<float> x = {-9.0f, -8.0f, -7.5f, 0.0f, 7.99f, 8.0f, 8.01f, 100.0f, NAN};
  const auto n = static_cast<Index>(x.size());
  std::vector<float> y(x.size()), dx(x.size(), NAN);
  k.clamp(y.data(), x.data(), n, 8.0f);
  const std::vector<float> want = {-8.0f, -8.0f, -7.5f, 0.0f, 7.99f, 8.0f, 8.0f, 8.0f};
  for (Index i = 0; i + 1 < n; ++i) EXPECT_EQ(y[i], want[i]) << i;
  EXPECT_TRUE(std::isnan(y[8]));
  const std::vector<float> dy(x.size(), 3.0f);
  k.clamp_backward(dx.data(), dy.data(), x.data(), n, 8.0f);
  EXPECT_EQ(dx, (std::vector<float>{0, 3, 3, 3, 3, 3, 0, 0, 0}));
  std::vector<std::uint16_t> x16(x.size()), y16(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) x16[i] = f32_to_bf16(x[i]);
  auto in_place = x16;
  k.clamp_bf16(in_place.data(), in_place.data(), n, 8.0f);
  for (Index i = 0; i + 1 < n; ++i) {
    EXPECT_EQ(bf16_to_f32(in_place[i]), std::fmin(std::fmax(bf16_to_f32(x16[i]), -8.0f), 8.0f)) << i;
  }
  EXPECT_TRUE(std::isnan(bf16_to_f32(in_place[8])));
  auto grad = dy;  // in place; bf16(7.99) and bf16(8.01) are 8: on the bound, so they pass
  k.clamp_backward_bf16_in(grad.data(), grad.data(), x16.data(), n, 8.0f);
  EXPECT_EQ(grad, (std::vector<float>{0, 3, 3, 3, 3, 3, 3, 0, 0}));
  // A bound between bf16 values (0.6: bf16 0.59765625 below it, 0.6015625 above) compares in
  // float32 and writes its rounding: 0.6015625 clamped to bf16(0.6), its gradient 0.
  const std::uint16_t above = f32_to_bf16(0.6015625f), below = f32_to_bf16(0.59765625f);
  std::vector<std::uint16_t> pair = {above, below}, clamped(2);
  k.clamp_bf16(clamped.data(), pair.data(), 2, 0.6f);
  EXPECT_EQ(clamped, (std::vector<std::uint16_t>{f32_to_bf16(0.6f), below}));
  std::vector<float> pair_grad = {3.0f, 3.0f};
  k.clamp_backward_bf16_in(pair_grad.data(), pair_grad.data(), pair.data(), 2, 0.6f);
  EXPECT_EQ(pair_grad, (std::vector<float>{0.0f, 3.0f}));
}

// OpenBLAS's fallback kernels on a CPU newer than it are named, with what to set; a CPU without AVX2
// (where they are the right ones) and OpenBLAS's own choice of AVX2 or AVX-512 kernels are not.
TEST(BlasKernels, AFallbackBelowTheCpuIsWarnedAbout) {
  const std::string avx2 = blas_kernel_warning("Prescott", true, false);
  EXPECT_NE(avx2.find("Prescott"), std::string::npos) << avx2;
  EXPECT_NE(avx2.find("OPENBLAS_CORETYPE=Haswell"), std::string::npos) << avx2;
  EXPECT_NE(blas_kernel_warning("Nehalem", true, true).find("OPENBLAS_CORETYPE=SkylakeX"), std::string::npos);
  EXPECT_EQ(blas_kernel_warning("Prescott", false, false), "");
  EXPECT_EQ(blas_kernel_warning("Haswell", true, true), "");
  EXPECT_EQ(blas_kernel_warning("SkylakeX", true, true), "");
  EXPECT_EQ(blas_kernel_warning("Zen", true, false), "");
}

}  // namespace
}  // namespace spin::kernels
