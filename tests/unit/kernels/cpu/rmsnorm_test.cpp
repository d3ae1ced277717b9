#include <gtest/gtest.h>

#include "common/test_util.h"
#include "core/dtype.h"
#include "kernels/cpu/cpu_kernels.h"
#include "unit/kernels/reference.h"

namespace spin::kernels {
namespace {

using testing::to_double;

TEST(RmsNorm, ForwardAndBackwardMatchNaiveAndFiniteDifferences) {
  const CpuKernels k;
  const int n = 5, dim = 24;
  const float eps = 1e-5f;
  auto x = testing::random_vector(n * dim, 1, 2.0f);
  auto w = testing::random_vector(dim, 2);
  const auto r = testing::random_vector(n * dim, 3);
  std::vector<float> out(n * dim), rstd(n);
  k.rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), n, dim, eps, 0.0f);
  testing::expect_close(out, testing::ref::rmsnorm(to_double(x), to_double(w), n, dim, eps),
                        1e-5, 1e-6, "out");

  std::vector<float> dx(n * dim, 1.0f), dw(dim, 2.0f);  // both accumulate
  k.rmsnorm_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), rstd.data(), n, dim, 0.0f);
  testing::ref::Vec dx_ref, dw_ref;
  testing::ref::rmsnorm_backward(to_double(r), to_double(x), to_double(w), n, dim, eps, dx_ref,
                                 dw_ref);
  for (double& v : dx_ref) v += 1.0;
  for (double& v : dw_ref) v += 2.0;
  testing::expect_close(dx, dx_ref, 1e-4, 1e-5, "dx");
  testing::expect_close(dw, dw_ref, 1e-4, 1e-5, "dw");

  const auto loss = [&] {
    k.rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), n, dim, eps, 0.0f);
    return testing::weighted_sum(out, r);
  };
  std::vector<float> gx(n * dim, 0.0f), gw(dim, 0.0f);
  loss();
  k.rmsnorm_backward(gx.data(), gw.data(), r.data(), x.data(), w.data(), rstd.data(), n, dim, 0.0f);
  testing::check_gradient(x, gx, loss, 1e-2, 5e-3, 1e-4, "dx vs finite differences");
  testing::check_gradient(w, gw, loss, 1e-2, 5e-3, 1e-4, "dw vs finite differences");
}

// Gemma's norms scale by 1 + w: with w_offset 1 every kernel gives what it gives for the weights
// 1 + w (the naive reference on those, bitwise for the forward), and dw is d/dw of the loss
// (finite differences); in bf16 too.
TEST(RmsNorm, WeightOffsetActsAsOnePlusTheWeights) {
  const CpuKernels k;
  const int n = 5, dim = 24;
  const float eps = 1e-6f;
  auto x = testing::random_vector(n * dim, 11, 2.0f);
  auto w = testing::random_vector(dim, 12, 0.5f);  // around 0, as Gemma's stored weights
  std::vector<float> one_plus_w(dim);
  for (int j = 0; j < dim; ++j) one_plus_w[j] = 1.0f + w[j];
  const auto r = testing::random_vector(n * dim, 13);
  std::vector<float> out(n * dim), rstd(n), want(n * dim), want_rstd(n);
  k.rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), n, dim, eps, 1.0f);
  k.rmsnorm_forward(want.data(), want_rstd.data(), x.data(), one_plus_w.data(), n, dim, eps, 0.0f);
  EXPECT_EQ(out, want);
  EXPECT_EQ(rstd, want_rstd);
  std::vector<std::uint16_t> out16(n * dim), want16(n * dim);
  k.rmsnorm_forward_bf16(out16.data(), rstd.data(), x.data(), w.data(), n, dim, eps, 1.0f);
  k.to_bf16(want16.data(), want.data(), n * dim);
  EXPECT_EQ(out16, want16);

  std::vector<float> dx(n * dim, 0.0f), dw(dim, 0.0f), want_dx(n * dim, 0.0f), want_dw(dim, 0.0f);
  k.rmsnorm_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), rstd.data(), n, dim, 1.0f);
  k.rmsnorm_backward(want_dx.data(), want_dw.data(), r.data(), x.data(), one_plus_w.data(), rstd.data(), n, dim, 0.0f);
  EXPECT_EQ(dx, want_dx);
  EXPECT_EQ(dw, want_dw);
  testing::ref::Vec dx_ref, dw_ref;
  testing::ref::rmsnorm_backward(to_double(r), to_double(x), to_double(one_plus_w), n, dim, eps, dx_ref, dw_ref);
  testing::expect_close(dx, dx_ref, 1e-4, 1e-5, "dx");
  const auto loss = [&] {
    k.rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), n, dim, eps, 1.0f);
    return testing::weighted_sum(out, r);
  };
  testing::check_gradient(w, dw, loss, 1e-2, 5e-3, 1e-4, "dw vs finite differences");

  // Over bf16 input (head norms): the widened input's results.
  std::vector<std::uint16_t> x16(n * dim);
  k.to_bf16(x16.data(), x.data(), n * dim);
  std::vector<float> x_wide(n * dim);
  for (int i = 0; i < n * dim; ++i) x_wide[i] = bf16_to_f32(x16[i]);
  k.rmsnorm_forward_bf16_in(out16.data(), rstd.data(), x16.data(), w.data(), n, dim, eps, 1.0f);
  k.rmsnorm_forward_bf16(want16.data(), want_rstd.data(), x_wide.data(), one_plus_w.data(), n, dim, eps, 0.0f);
  EXPECT_EQ(out16, want16);
  std::vector<float> dx16(n * dim, 0.0f), dw16(dim, 0.0f);
  std::fill(want_dx.begin(), want_dx.end(), 0.0f), std::fill(want_dw.begin(), want_dw.end(), 0.0f);
  k.rmsnorm_backward_bf16_in(dx16.data(), dw16.data(), r.data(), x16.data(), w.data(), rstd.data(), n, dim, 1.0f);
  k.rmsnorm_backward(want_dx.data(), want_dw.data(), r.data(), x_wide.data(), one_plus_w.data(), rstd.data(), n, dim,
                     0.0f);
  EXPECT_EQ(dx16, want_dx);
  EXPECT_EQ(dw16, want_dw);
}

// Mixed precision: the bf16 output is the float32 output rounded (no float32 copy is made),
// and 1/rms is the float32 kernel's.
TEST(RmsNorm, Bf16OutputIsTheRoundedFloat32Output) {
  const CpuKernels k;
  const Index n = 7, dim = 300;
  const auto x = testing::random_vector(n * dim, 4, 3.0f), w = testing::random_vector(dim, 5);
  std::vector<float> out(n * dim), rstd(n), rstd16(n, -1.0f);
  std::vector<std::uint16_t> out16(n * dim), want(n * dim);
  k.rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), n, dim, 1e-5f, 0.0f);
  k.rmsnorm_forward_bf16(out16.data(), rstd16.data(), x.data(), w.data(), n, dim, 1e-5f, 0.0f);
  k.to_bf16(want.data(), out.data(), n * dim);
  EXPECT_EQ(out16, want);
  EXPECT_EQ(rstd16, rstd);
}

}  // namespace
}  // namespace spin::kernels
