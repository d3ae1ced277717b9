#include "core/philox.h"

#include <gtest/gtest.h>

#include <cmath>

namespace spin {
namespace {

// Random123's published known-answer vectors for Philox4x32-10 (its tests/kat_vectors).
TEST(Philox, MatchesPublishedKnownAnswers) {
  EXPECT_EQ(philox4x32_10({0, 0, 0, 0}, {0, 0}),
            (PhiloxCounter{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
  EXPECT_EQ(philox4x32_10({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
                          {0xffffffffu, 0xffffffffu}),
            (PhiloxCounter{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
  EXPECT_EQ(philox4x32_10({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
                          {0xa4093822u, 0x299f31d0u}),
            (PhiloxCounter{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

TEST(Philox, BitsArePureFunctionsOfSeedStreamCounter) {
  EXPECT_EQ(philox_bits(7, 3, 11), philox_bits(7, 3, 11));
  EXPECT_NE(philox_bits(7, 3, 11), philox_bits(7, 3, 12));
  EXPECT_NE(philox_bits(7, 3, 11), philox_bits(7, 4, 11));
  EXPECT_NE(philox_bits(7, 3, 11), philox_bits(8, 3, 11));
  // The 64-bit words are split into the counter and key words as documented.
  EXPECT_EQ(philox_bits(0x0000000200000001ull, 0x0000000600000005ull, 0x0000000400000003ull),
            philox4x32_10({3, 4, 5, 6}, {1, 2}));
}

TEST(Philox, UniformIsOpenAndNormalHasUnitMoments) {
  EXPECT_GT(uniform_open(0u), 0.0f);
  EXPECT_LT(uniform_open(0xffffffffu), 1.0f);
  const int n = 200000;
  double sum = 0, sq = 0;
  for (int i = 0; i < n; ++i) {
    const double x = philox_normal(42, 0, static_cast<std::uint64_t>(i));
    sum += x;
    sq += x * x;
  }
  // Standard errors: 1/sqrt(n) = 0.0022 for the mean, sqrt(2/n) = 0.0032 for the variance.
  EXPECT_NEAR(sum / n, 0.0, 0.011);
  EXPECT_NEAR(sq / n, 1.0, 0.016);
}

}  // namespace
}  // namespace spin
