#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "kernels/cpu/vec_math.h"

namespace spin::kernels::cpu {
namespace {

TEST(ExpApprox, WithinThreeUlpOfExpWhereTheResultIsNormal) {
  double worst = 0.0;
  for (float x = -87.0f; x <= 88.0f; x += 0.0137f) {
    const double want = std::exp(static_cast<double>(x));
    const double rel = std::fabs(exp_approx(x) - want) / want;
    worst = std::max(worst, rel);
  }
  EXPECT_LT(worst, 3 * 5.96e-8) << "max relative error " << worst;
  EXPECT_EQ(exp_approx(0.0f), 1.0f);
}

TEST(ExpApprox, UnderflowsToZero) {
  EXPECT_EQ(exp_approx(-100.0f), 0.0f);
  EXPECT_EQ(exp_approx(-std::numeric_limits<float>::infinity()), 0.0f);
}

// Phi(x) for the exact GELU: relative error against erfc in double over both tails and the middle
// -- the fit's 1.2e-7 and float's evaluation, 4.5e-7 measured; the left tail keeps it (e^(-x^2 / 2)
// from x's exact halves: without them 1.7e-5 at x = -12, 1.7e-6 at -4).
TEST(NormalCdfApprox, WithinTenUlpOfPhiInBothTails) {
  double worst = 0.0;
  for (float x = -12.0f; x <= 12.0f; x += 0.00173f) {
    const double want = 0.5 * std::erfc(-static_cast<double>(x) / std::sqrt(2.0));
    worst = std::max(worst, std::fabs(normal_cdf_approx(x) - want) / want);
  }
  EXPECT_LT(worst, 10 * 5.96e-8) << "max relative error " << worst;
  EXPECT_NEAR(normal_cdf_approx(0.0f), 0.5f, 1e-7f);
  EXPECT_EQ(normal_cdf_approx(20.0f), 1.0f);
  EXPECT_EQ(normal_cdf_approx(-20.0f), 0.0f);
}

// Both branches (the polynomial below 0.625, the exponential form above), the switch between
// them, tiny arguments (no cancellation: tanh x = x there) and saturation far out.
TEST(TanhApprox, WithinThreeUlpOfTanh) {
  double worst = 0.0;
  for (float x = -12.0f; x <= 12.0f; x += 0.00173f) {
    const double want = std::tanh(static_cast<double>(x));
    if (want == 0.0) continue;
    worst = std::max(worst, std::fabs(tanh_approx(x) - want) / std::fabs(want));
  }
  for (float x : {1e-30f, -3e-12f, 1e-5f, 0.6249999f, 0.625f, -0.625f, 0.6250001f}) {
    const double want = std::tanh(static_cast<double>(x));
    worst = std::max(worst, std::fabs(tanh_approx(x) - want) / std::fabs(want));
  }
  EXPECT_LT(worst, 3 * 5.96e-8) << "max relative error " << worst;
  EXPECT_EQ(tanh_approx(0.0f), 0.0f);
  EXPECT_EQ(tanh_approx(60.0f), 1.0f);
  EXPECT_EQ(tanh_approx(-200.0f), -1.0f);
  // Gemma 2's cap and its slope: cap tanh(x / cap), 1 - (y / cap)^2.
  EXPECT_NEAR(softcap(75.0f, 50.0f), 50.0 * std::tanh(1.5), 1e-5);
  EXPECT_NEAR(softcap_slope(softcap(75.0f, 50.0f), 50.0f), 1.0 - std::pow(std::tanh(1.5), 2), 1e-6);
}

}  // namespace
}  // namespace spin::kernels::cpu
