// LayerNorm (CpuKernels::layernorm_*), OLMo's without weight or bias and StableLM's with both: the
// forward against the definition in double, the backward against finite differences of a weighted
// sum, the bf16 forward as the rounding of the float32 one; the per-head form (a weight a head) as the
// plain norm of each head's rows with that head's weight.
#include <gtest/gtest.h>

#include <cmath>

#include "common/test_util.h"
#include "core/dtype.h"
#include "kernels/cpu/cpu_kernels.h"

namespace spin::kernels {
namespace {

// (x - mean) / sqrt(var + eps) w + b per row, in double (w, b empty: 1, 0).
std::vector<double> layernorm_reference(const std::vector<float>& x, int n, int dim, double eps,
                                        const std::vector<float>& w = {}, const std::vector<float>& b = {}) {
  std::vector<double> out(x.size());
  for (int i = 0; i < n; ++i) {
    double mean = 0.0, var = 0.0;
    for (int j = 0; j < dim; ++j) mean += x[i * dim + j];
    mean /= dim;
    for (int j = 0; j < dim; ++j) var += (x[i * dim + j] - mean) * (x[i * dim + j] - mean);
    var /= dim;
    for (int j = 0; j < dim; ++j) {
      out[i * dim + j] =
          (x[i * dim + j] - mean) / std::sqrt(var + eps) * (w.empty() ? 1.0 : w[j]) + (b.empty() ? 0.0 : b[j]);
    }
  }
  return out;
}

TEST(LayerNorm, ForwardMatchesDefinitionAndBackwardFiniteDifferences) {
  const CpuKernels k;
  const int n = 5, dim = 24;
  const float eps = 1e-5f;
  auto x = testing::random_vector(n * dim, 1, 2.0f);
  for (int j = 0; j < dim; ++j) x[j] += 3.0f;  // a row far from zero mean: the mean must come off
  const auto r = testing::random_vector(n * dim, 3);
  std::vector<float> out(n * dim), rstd(n);
  k.layernorm_forward(out.data(), rstd.data(), x.data(), nullptr, nullptr, n, dim, eps);
  testing::expect_close(out, layernorm_reference(x, n, dim, eps), 1e-5, 1e-6, "out");

  const auto loss = [&] {
    k.layernorm_forward(out.data(), rstd.data(), x.data(), nullptr, nullptr, n, dim, eps);
    return testing::weighted_sum(out, r);
  };
  loss();
  std::vector<float> dx(n * dim, 1.0f);  // accumulates
  k.layernorm_backward(dx.data(), nullptr, nullptr, r.data(), x.data(), nullptr, rstd.data(), n, dim);
  for (float& v : dx) v -= 1.0f;
  testing::check_gradient(x, dx, loss, 1e-2, 5e-3, 1e-4, "dx vs finite differences");

  // Each row's gradient is orthogonal to the constant and to its normed row: the norm ignores a
  // shift of its input, and a scaling.
  k.layernorm_forward(out.data(), rstd.data(), x.data(), nullptr, nullptr, n, dim, eps);
  for (int i = 0; i < n; ++i) {
    double sum = 0.0, dot = 0.0;
    for (int j = 0; j < dim; ++j) {
      sum += dx[i * dim + j];
      dot += dx[i * dim + j] * out[i * dim + j];
    }
    EXPECT_NEAR(sum, 0.0, 1e-5) << "row " << i;
    EXPECT_NEAR(dot, 0.0, 1e-3) << "row " << i;  // up to eps's share of the variance
  }
}

// StableLM's: a weight and a bias. Forward against the definition; dx, dw and db against finite
// differences, dw and db accumulating; without dw and db (a frozen norm) the same dx.
TEST(LayerNorm, WeightAndBiasGradientsMatchFiniteDifferences) {
  const CpuKernels k;
  const int n = 6, dim = 20;
  const float eps = 1e-5f;
  auto x = testing::random_vector(n * dim, 11, 2.0f);
  for (int j = 0; j < dim; ++j) x[dim + j] -= 4.0f;  // a row far from zero mean
  auto w = testing::random_vector(dim, 12, 1.0f), b = testing::random_vector(dim, 13, 1.0f);
  for (float& v : w) v += 1.0f;
  const auto r = testing::random_vector(n * dim, 14);
  std::vector<float> out(n * dim), rstd(n);
  k.layernorm_forward(out.data(), rstd.data(), x.data(), w.data(), b.data(), n, dim, eps);
  testing::expect_close(out, layernorm_reference(x, n, dim, eps, w, b), 1e-5, 1e-6, "out");

  const auto loss = [&] {
    k.layernorm_forward(out.data(), rstd.data(), x.data(), w.data(), b.data(), n, dim, eps);
    return testing::weighted_sum(out, r);
  };
  loss();
  std::vector<float> dx(n * dim, 0.5f), dw(dim, 0.5f), db(dim, 0.5f);  // each accumulates
  k.layernorm_backward(dx.data(), dw.data(), db.data(), r.data(), x.data(), w.data(), rstd.data(), n, dim);
  for (auto* g : {&dx, &dw, &db}) {
    for (float& v : *g) v -= 0.5f;
  }
  testing::check_gradient(x, dx, loss, 1e-2, 5e-3, 1e-4, "dx vs finite differences");
  testing::check_gradient(w, dw, loss, 1e-2, 5e-3, 1e-4, "dw vs finite differences");
  testing::check_gradient(b, db, loss, 1e-2, 5e-3, 1e-4, "db vs finite differences");

  std::vector<float> dx_frozen(n * dim, 0.5f);
  loss();
  k.layernorm_backward(dx_frozen.data(), nullptr, nullptr, r.data(), x.data(), w.data(), rstd.data(), n, dim);
  for (float& v : dx_frozen) v -= 0.5f;
  EXPECT_EQ(dx_frozen, dx);
}

TEST(LayerNorm, Bf16OutputIsTheRoundingOfTheFloat32One) {
  const CpuKernels k;
  const int n = 7, dim = 40;
  const auto x = testing::random_vector(n * dim, 5, 4.0f);
  const auto w = testing::random_vector(dim, 6), b = testing::random_vector(dim, 7);
  for (const bool affine : {false, true}) {
    const float* wp = affine ? w.data() : nullptr;
    const float* bp = affine ? b.data() : nullptr;
    std::vector<float> out(n * dim), rstd(n), rstd16(n);
    std::vector<std::uint16_t> out16(n * dim);
    k.layernorm_forward(out.data(), rstd.data(), x.data(), wp, bp, n, dim, 1e-5f);
    k.layernorm_forward_bf16(out16.data(), rstd16.data(), x.data(), wp, bp, n, dim, 1e-5f);
    for (int i = 0; i < n * dim; ++i) ASSERT_EQ(out16[i], f32_to_bf16(out[i])) << i << (affine ? " affine" : "");
    EXPECT_EQ(rstd16, rstd);
  }
}

// head_layernorm_*: x [n, heads, dim] with w [heads, dim] -- every head's rows normed with its own
// weight row -- against layernorm_* run head by head on that head's rows gathered (bitwise: the same
// loops), dw accumulating into each head's row; the bf16 forward the float32 one rounded.
TEST(LayerNorm, PerHeadWeightsEqualThePlainNormOfEachHeadsRows) {
  const CpuKernels k;
  const int n = 6, heads = 3, dim = 16, width = heads * dim;
  auto x = testing::random_vector(n * width, 11, 2.0f);
  for (int j = 0; j < dim; ++j) x[j] += 3.0f;  // head 0 of row 0 off zero mean
  const auto w = testing::random_vector(heads * dim, 12), dout = testing::random_vector(n * width, 13);
  std::vector<float> out(n * width), rstd(n * heads), dx(n * width, 0.5f), dw(heads * dim, 0.25f);
  std::vector<std::uint16_t> out16(n * width);
  k.head_layernorm_forward(out.data(), rstd.data(), x.data(), w.data(), n, heads, dim, 1e-5f);
  k.head_layernorm_backward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), rstd.data(), n, heads, dim);
  std::vector<float> rstd16(n * heads);
  k.head_layernorm_forward_bf16(out16.data(), rstd16.data(), x.data(), w.data(), n, heads, dim, 1e-5f);
  for (int i = 0; i < n * width; ++i) ASSERT_EQ(out16[i], f32_to_bf16(out[i])) << i;
  for (int h = 0; h < heads; ++h) {
    // Head h's rows, gathered.
    const auto gather = [&](const std::vector<float>& v) {
      std::vector<float> rows(n * dim);
      for (int i = 0; i < n; ++i) std::copy_n(v.begin() + i * width + h * dim, dim, rows.begin() + i * dim);
      return rows;
    };
    const std::vector<float> xh = gather(x), dh = gather(dout), wh(w.begin() + h * dim, w.begin() + (h + 1) * dim);
    std::vector<float> want(n * dim), want_rstd(n), want_dx(n * dim, 0.5f), want_dw(dim, 0.25f);
    k.layernorm_forward(want.data(), want_rstd.data(), xh.data(), wh.data(), nullptr, n, dim, 1e-5f);
    k.layernorm_backward(want_dx.data(), want_dw.data(), nullptr, dh.data(), xh.data(), wh.data(), want_rstd.data(), n,
                         dim);
    EXPECT_EQ(gather(out), want) << h;
    EXPECT_EQ(gather(dx), want_dx) << h;
    EXPECT_EQ(std::vector<float>(dw.begin() + h * dim, dw.begin() + (h + 1) * dim), want_dw) << h;
    for (int i = 0; i < n; ++i) EXPECT_EQ(rstd[i * heads + h], want_rstd[i]) << h;
  }
}

}  // namespace
}  // namespace spin::kernels
