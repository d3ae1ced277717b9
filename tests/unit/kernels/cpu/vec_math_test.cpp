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

}  // namespace
}  // namespace spin::kernels::cpu
