#include "core/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace spin {
namespace {

TEST(DType, Bf16KnownBitPatterns) {
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(bf16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  // 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125: ties go to even (1.0).
  EXPECT_EQ(f32_to_bf16(1.00390625f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(1.01171875f), 0x3f82);  // 1 + 3 * 2^-8 -> tie, rounds up to even
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::nanf("")))));
}

TEST(DType, F16KnownBitPatterns) {
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);                  // largest finite
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));     // smallest subnormal
  EXPECT_EQ(f16_to_f32(0x0400), std::ldexp(1.0f, -14));     // smallest normal
  EXPECT_TRUE(std::isinf(f16_to_f32(0x7c00)));
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
}

TEST(DType, F16RoundTripsEveryFiniteValue) {
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    const auto bits = static_cast<std::uint16_t>(h);
    const float f = f16_to_f32(bits);
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_f16(f), bits) << "bits " << h;
  }
}

// OCP FP8 E4M3 (e4m3fn), every one of its 256 codes against the format's definition in double: sign,
// 4 exponent bits biased by 7, 3 mantissa bits, subnormals below exponent 1, S.1111.111 NaN and no
// infinities (0x7E is the largest, 448).
TEST(DType, F8E4M3EveryCode) {
  for (int code = 0; code < 256; ++code) {
    const int exponent = (code >> 3) & 15, mantissa = code & 7;
    const double magnitude = exponent == 0 ? mantissa / 8.0 * std::pow(2.0, -6)
                                           : (1.0 + mantissa / 8.0) * std::pow(2.0, exponent - 7);
    const float got = f8e4m3_to_f32(static_cast<std::uint8_t>(code));
    if ((code & 0x7F) == 0x7F) {
      EXPECT_TRUE(std::isnan(got)) << code;
      continue;
    }
    EXPECT_EQ(got, static_cast<float>(code & 0x80 ? -magnitude : magnitude)) << code;
  }
  EXPECT_EQ(f8e4m3_to_f32(0x7E), 448.0f);
  EXPECT_TRUE(std::signbit(f8e4m3_to_f32(0x80)));
}

// The encoder: every code's value back to the code; between two neighbouring codes the nearer one, the
// even one at the midpoint -- against a search of the 127 positive values, over their midpoints and
// their neighbours and random values across the format's range --; past 448 (finite or not) 448; NaN the
// NaN code.
TEST(DType, F32ToF8E4M3RoundsToTheNearestCodeTiesToEven) {
  for (int code = 0; code < 256; ++code) {
    if ((code & 0x7F) == 0x7F) continue;
    EXPECT_EQ(f32_to_f8e4m3(f8e4m3_to_f32(static_cast<std::uint8_t>(code))), code) << code;
  }
  const auto nearest = [](float v) {  // the search: the code of least distance, the even one on a tie
    int best = 0;
    for (int code = 1; code < 0x7F; ++code) {
      const double d = std::fabs(static_cast<double>(f8e4m3_to_f32(static_cast<std::uint8_t>(code))) - std::fabs(v));
      const double d_best =
          std::fabs(static_cast<double>(f8e4m3_to_f32(static_cast<std::uint8_t>(best))) - std::fabs(v));
      if (d < d_best || (d == d_best && code % 2 == 0)) best = code;
    }
    return static_cast<std::uint8_t>(best | (std::signbit(v) ? 0x80 : 0));
  };
  std::vector<float> values;
  for (int code = 0; code < 0x7E; ++code) {
    const float lo = f8e4m3_to_f32(static_cast<std::uint8_t>(code));
    const float mid = (lo + f8e4m3_to_f32(static_cast<std::uint8_t>(code + 1))) / 2;  // exact: few bits
    for (const float v : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f)}) {
      values.push_back(v);
      values.push_back(-v);
    }
  }
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> exponent(-12.0f, 8.8f);
  for (int i = 0; i < 20000; ++i) values.push_back((i % 2 ? -1.0f : 1.0f) * std::exp2(exponent(rng)));
  for (const float v : values) {
    if (std::fabs(v) < 448.0f) {
      ASSERT_EQ(f32_to_f8e4m3(v), nearest(v)) << v;
    }
  }
  EXPECT_EQ(f32_to_f8e4m3(0.5f * (f8e4m3_to_f32(0x01) + f8e4m3_to_f32(0x02))), 0x02);  // tie: to the even code
  EXPECT_EQ(f32_to_f8e4m3(0.5f * (f8e4m3_to_f32(0x02) + f8e4m3_to_f32(0x03))), 0x02);
  EXPECT_EQ(f32_to_f8e4m3(0.5f * f8e4m3_to_f32(0x01)), 0x00);  // half the least subnormal: to zero
  EXPECT_EQ(f32_to_f8e4m3(-0.0f), 0x80);
  EXPECT_EQ(f32_to_f8e4m3(448.0f), 0x7E);
  EXPECT_EQ(f32_to_f8e4m3(463.9f), 0x7E);
  EXPECT_EQ(f32_to_f8e4m3(1e30f), 0x7E);
  EXPECT_EQ(f32_to_f8e4m3(-std::numeric_limits<float>::infinity()), 0xFE);
  EXPECT_EQ(f32_to_f8e4m3(std::numeric_limits<float>::quiet_NaN()) & 0x7F, 0x7F);
}

TEST(DType, ConvertToF32RefusesIntegers) {
  const std::int32_t v = 3;
  float out;
  EXPECT_THROW(convert_to_f32(&v, DType::I32, 1, &out), std::runtime_error);
}

}  // namespace
}  // namespace spin
