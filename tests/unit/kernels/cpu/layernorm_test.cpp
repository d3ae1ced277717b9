// OLMo's LayerNorm without weight or bias (CpuKernels::layernorm_*): the forward against the
// definition in double, the backward against finite differences of a weighted sum, the bf16
// forward as the rounding of the float32 one.
#include <gtest/gtest.h>

#include <cmath>

#include "common/test_util.h"
#include "core/dtype.h"
#include "kernels/cpu/cpu_kernels.h"

namespace spin::kernels {
namespace {

// (x - mean) / sqrt(var + eps) per row, in double.
std::vector<double> layernorm_reference(const std::vector<float>& x, int n, int dim, double eps) {
  std::vector<double> out(x.size());
  for (int i = 0; i < n; ++i) {
    double mean = 0.0, var = 0.0;
    for (int j = 0; j < dim; ++j) mean += x[i * dim + j];
    mean /= dim;
    for (int j = 0; j < dim; ++j) var += (x[i * dim + j] - mean) * (x[i * dim + j] - mean);
    var /= dim;
    for (int j = 0; j < dim; ++j) out[i * dim + j] = (x[i * dim + j] - mean) / std::sqrt(var + eps);
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
  k.layernorm_forward(out.data(), rstd.data(), x.data(), n, dim, eps);
  testing::expect_close(out, layernorm_reference(x, n, dim, eps), 1e-5, 1e-6, "out");

  const auto loss = [&] {
    k.layernorm_forward(out.data(), rstd.data(), x.data(), n, dim, eps);
    return testing::weighted_sum(out, r);
  };
  loss();
  std::vector<float> dx(n * dim, 1.0f);  // accumulates
  k.layernorm_backward(dx.data(), r.data(), x.data(), rstd.data(), n, dim);
  for (float& v : dx) v -= 1.0f;
  testing::check_gradient(x, dx, loss, 1e-2, 5e-3, 1e-4, "dx vs finite differences");

  // Each row's gradient is orthogonal to the constant and to its normed row: the norm ignores a
  // shift of its input, and a scaling.
  k.layernorm_forward(out.data(), rstd.data(), x.data(), n, dim, eps);
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

TEST(LayerNorm, Bf16OutputIsTheRoundingOfTheFloat32One) {
  const CpuKernels k;
  const int n = 7, dim = 40;
  const auto x = testing::random_vector(n * dim, 5, 4.0f);
  std::vector<float> out(n * dim), rstd(n), rstd16(n);
  std::vector<std::uint16_t> out16(n * dim);
  k.layernorm_forward(out.data(), rstd.data(), x.data(), n, dim, 1e-5f);
  k.layernorm_forward_bf16(out16.data(), rstd16.data(), x.data(), n, dim, 1e-5f);
  for (int i = 0; i < n * dim; ++i) ASSERT_EQ(out16[i], f32_to_bf16(out[i])) << i;
  EXPECT_EQ(rstd16, rstd);
}

}  // namespace
}  // namespace spin::kernels
