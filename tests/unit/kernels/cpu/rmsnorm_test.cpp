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

// The norm over rows split across ranks (OLMo 2's q and k norms under TP): the rows' columns
// cut into three slices of unequal width, each slice's partial sums added up as the TP
// all-reduce would, then each slice normed from the sums -- together the one-rank norm of the
// whole rows, forward and backward (dw slice by slice), to float32 rounding; rstd may overwrite
// the sums; dw null leaves the input gradient alone.
TEST(RmsNorm, RowsSpreadAcrossRanksEqualTheWholeRowsNorm) {
  const CpuKernels k;
  const Index n = 6, dim = 40;
  const std::vector<Index> cuts = {0, 8, 30, 40};
  const float eps = 1e-5f;
  const auto x = testing::random_vector(n * dim, 7, 2.0f), w = testing::random_vector(dim, 8),
             dout = testing::random_vector(n * dim, 9);
  std::vector<float> want(n * dim), want_rstd(n), want_dx(n * dim, 0.5f), want_dw(dim, 0.25f);
  k.rmsnorm_forward(want.data(), want_rstd.data(), x.data(), w.data(), n, dim, eps, 0.0f);
  k.rmsnorm_backward(want_dx.data(), want_dw.data(), dout.data(), x.data(), w.data(), want_rstd.data(), n, dim, 0.0f);

  // Each slice as its rank holds it: [n, width] row-major, w's matching entries.
  const auto slice = [&](const std::vector<float>& m, std::size_t s) {
    std::vector<float> part;
    for (Index i = 0; i < n; ++i)
      part.insert(part.end(), m.begin() + i * dim + cuts[s], m.begin() + i * dim + cuts[s + 1]);
    return part;
  };
  const std::size_t slices = cuts.size() - 1;
  std::vector<float> sums(n, 0.0f), dots(n, 0.0f), part(n);
  for (std::size_t s = 0; s < slices; ++s) {
    const std::vector<float> xs = slice(x, s);
    k.row_dot(part.data(), xs.data(), xs.data(), nullptr, n, cuts[s + 1] - cuts[s]);
    for (Index i = 0; i < n; ++i) sums[i] += part[i];
  }
  std::vector<float> rstd = sums;  // overwritten in place by the first slice, as the model does
  for (std::size_t s = 0; s < slices; ++s) {
    const Index width = cuts[s + 1] - cuts[s];
    const std::vector<float> xs = slice(x, s), ws(w.begin() + cuts[s], w.begin() + cuts[s + 1]), ds = slice(dout, s);
    std::vector<float> out(n * width), out_rstd(n);
    std::vector<std::uint16_t> out16(n * width), rounded(n * width);
    k.rmsnorm_forward_from_sums(out.data(), out_rstd.data(), xs.data(), ws.data(), sums.data(), n, width, dim, eps);
    testing::expect_close(out, to_double(slice(want, s)), 1e-5, 1e-6, "out");
    testing::expect_close(out_rstd, to_double(want_rstd), 1e-6, 0.0, "rstd");
    k.rmsnorm_forward_from_sums_bf16(out16.data(), out_rstd.data(), xs.data(), ws.data(), sums.data(), n, width, dim,
                                     eps);
    k.to_bf16(rounded.data(), out.data(), n * width);
    EXPECT_EQ(out16, rounded);
    if (s == 0) {
      k.rmsnorm_forward_from_sums(out.data(), rstd.data(), xs.data(), ws.data(), rstd.data(), n, width, dim, eps);
      EXPECT_EQ(rstd, out_rstd) << "rstd written over the sums";
    }
    k.row_dot(part.data(), ds.data(), xs.data(), ws.data(), n, width);
    for (Index i = 0; i < n; ++i) dots[i] += part[i];
  }
  for (std::size_t s = 0; s < slices; ++s) {
    const Index width = cuts[s + 1] - cuts[s];
    const std::vector<float> xs = slice(x, s), ws(w.begin() + cuts[s], w.begin() + cuts[s + 1]), ds = slice(dout, s);
    std::vector<float> dx(n * width, 0.5f), dw(width, 0.25f), dx_alone(n * width, 0.5f);
    k.rmsnorm_backward_from_dots(dx.data(), dw.data(), ds.data(), xs.data(), ws.data(), rstd.data(), dots.data(), n,
                                 width, dim);
    testing::expect_close(dx, to_double(slice(want_dx, s)), 1e-5, 1e-6, "dx");
    testing::expect_close(dw, to_double(std::vector<float>(want_dw.begin() + cuts[s], want_dw.begin() + cuts[s + 1])),
                          1e-5, 1e-6, "dw");
    k.rmsnorm_backward_from_dots(dx_alone.data(), nullptr, ds.data(), xs.data(), ws.data(), rstd.data(), dots.data(), n,
                                 width, dim);
    EXPECT_EQ(dx_alone, dx);
  }
}

}  // namespace
}  // namespace spin::kernels
