#include <gtest/gtest.h>

#include "common/test_util.h"
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
  k.rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), n, dim, eps);
  testing::expect_close(out, testing::ref::rmsnorm(to_double(x), to_double(w), n, dim, eps),
                        1e-5, 1e-6, "out");

  std::vector<float> dx(n * dim, 1.0f), dw(dim, 2.0f);  // both accumulate
  k.rmsnorm_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), rstd.data(), n, dim);
  testing::ref::Vec dx_ref, dw_ref;
  testing::ref::rmsnorm_backward(to_double(r), to_double(x), to_double(w), n, dim, eps, dx_ref,
                                 dw_ref);
  for (double& v : dx_ref) v += 1.0;
  for (double& v : dw_ref) v += 2.0;
  testing::expect_close(dx, dx_ref, 1e-4, 1e-5, "dx");
  testing::expect_close(dw, dw_ref, 1e-4, 1e-5, "dw");

  const auto loss = [&] {
    k.rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), n, dim, eps);
    return testing::weighted_sum(out, r);
  };
  std::vector<float> gx(n * dim, 0.0f), gw(dim, 0.0f);
  loss();
  k.rmsnorm_backward(gx.data(), gw.data(), r.data(), x.data(), w.data(), rstd.data(), n, dim);
  testing::check_gradient(x, gx, loss, 1e-2, 5e-3, 1e-4, "dx vs finite differences");
  testing::check_gradient(w, gw, loss, 1e-2, 5e-3, 1e-4, "dw vs finite differences");
}

// Mixed precision: the bf16 output is the float32 output rounded (no float32 copy is made),
// and 1/rms is the float32 kernel's.
TEST(RmsNorm, Bf16OutputIsTheRoundedFloat32Output) {
  const CpuKernels k;
  const Index n = 7, dim = 300;
  const auto x = testing::random_vector(n * dim, 4, 3.0f), w = testing::random_vector(dim, 5);
  std::vector<float> out(n * dim), rstd(n), rstd16(n, -1.0f);
  std::vector<std::uint16_t> out16(n * dim), want(n * dim);
  k.rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), n, dim, 1e-5f);
  k.rmsnorm_forward_bf16(out16.data(), rstd16.data(), x.data(), w.data(), n, dim, 1e-5f);
  k.to_bf16(want.data(), out.data(), n * dim);
  EXPECT_EQ(out16, want);
  EXPECT_EQ(rstd16, rstd);
}

}  // namespace
}  // namespace spin::kernels
