#include <gtest/gtest.h>

#include "common/test_util.h"
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

}  // namespace
}  // namespace spin::kernels
