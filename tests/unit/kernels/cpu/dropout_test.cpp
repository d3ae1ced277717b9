// LoRA's dropout kernel: its mask against Philox itself (core/philox.h, checked against Random123's
// known answers), the kept values' scale, the same mask for any column split and any row order, and
// the drop rate.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "common/test_util.h"
#include "core/dtype.h"
#include "core/philox.h"
#include "kernels/cpu/cpu_kernels.h"

namespace spin::kernels {
namespace {

constexpr Index kRows = 6, kCols = 37;

std::vector<std::int64_t> row_keys() {
  std::vector<std::int64_t> keys;
  for (Index i = 0; i < kRows; ++i) keys.push_back((i * 977 + 5) << 24 | (i + 3));
  return keys;
}

// Whether global column c of row key `key` survives, from the published Philox block: word c mod 4
// of block (seed; stream = row key; counter = site << 32 | c / 4), its top 24 bits against p 2^24.
bool kept_by_philox(std::uint64_t seed, std::int64_t key, std::uint32_t site, std::int64_t c, float p) {
  const PhiloxCounter bits = philox_bits(seed, static_cast<std::uint64_t>(key),
                                         (std::uint64_t{site} << 32) | static_cast<std::uint64_t>(c / 4));
  return static_cast<double>(bits[static_cast<std::size_t>(c % 4)] >> 8) >= static_cast<double>(p) * 16777216.0;
}

TEST(Dropout, MaskIsPhiloxAndKeptValuesAreScaled) {
  const CpuKernels k;
  const auto keys = row_keys();
  const auto x = testing::random_uniform(kRows * kCols, 1);
  const Kernels::DropoutMask mask{keys.data(), 0x1234ABCDull, 17, 0.3f, 11};
  std::vector<float> y(x.size(), NAN);
  k.dropout(y.data(), x.data(), kRows, kCols, mask, false);
  const float scale = 1.0f / (1.0f - 0.3f);
  for (Index i = 0; i < kRows; ++i) {
    for (Index c = 0; c < kCols; ++c) {
      const auto e = static_cast<std::size_t>(i * kCols + c);
      const bool kept = kept_by_philox(mask.seed, keys[static_cast<std::size_t>(i)], 17, 11 + c, 0.3f);
      EXPECT_EQ(y[e], x[e] * (kept ? scale : 0.0f)) << i << ", " << c;
    }
  }
  // accumulate adds the same values.
  auto acc = testing::random_uniform(x.size(), 2);
  const auto before = acc;
  k.dropout(acc.data(), x.data(), kRows, kCols, mask, true);
  for (std::size_t e = 0; e < x.size(); ++e) EXPECT_EQ(acc[e], before[e] + y[e]);
  // bf16: the same mask, one rounding of the widened value times the scale.
  std::vector<std::uint16_t> x16(x.size()), y16(x.size());
  for (std::size_t e = 0; e < x.size(); ++e) x16[e] = f32_to_bf16(x[e]);
  k.dropout_bf16(y16.data(), x16.data(), kRows, kCols, mask);
  for (std::size_t e = 0; e < x.size(); ++e) {
    EXPECT_EQ(y16[e], f32_to_bf16(bf16_to_f32(x16[e]) * (y[e] == 0.0f ? 0.0f : scale))) << e;
  }
}

// A row-parallel adapter's input split over TP ranks at any column, and the rows in another order
// (another batch, another rank): each element keeps its fate.
TEST(Dropout, SameMaskForAnySplitAndRowOrder) {
  const CpuKernels k;
  const auto keys = row_keys();
  const auto x = testing::random_uniform(kRows * kCols, 3);
  const Kernels::DropoutMask whole{keys.data(), 99, 5, 0.5f, 0};
  std::vector<float> want(x.size());
  k.dropout(want.data(), x.data(), kRows, kCols, whole, false);
  for (const Index split : {1, 4, 13, 30}) {
    std::vector<float> left(static_cast<std::size_t>(kRows * split)),
        right(static_cast<std::size_t>(kRows * (kCols - split)));
    std::vector<float> xl, xr;
    for (Index i = 0; i < kRows; ++i) {
      for (Index c = 0; c < kCols; ++c) (c < split ? xl : xr).push_back(x[static_cast<std::size_t>(i * kCols + c)]);
    }
    Kernels::DropoutMask second = whole;
    second.col_offset = split;
    k.dropout(left.data(), xl.data(), kRows, split, whole, false);
    k.dropout(right.data(), xr.data(), kRows, kCols - split, second, false);
    for (Index i = 0; i < kRows; ++i) {
      for (Index c = 0; c < kCols; ++c) {
        const float got = c < split ? left[static_cast<std::size_t>(i * split + c)]
                                    : right[static_cast<std::size_t>(i * (kCols - split) + c - split)];
        EXPECT_EQ(got, want[static_cast<std::size_t>(i * kCols + c)]) << "split " << split;
      }
    }
  }
  // Rows reversed with their keys: the outputs reversed.
  std::vector<std::int64_t> reversed_keys(keys.rbegin(), keys.rend());
  std::vector<float> xr, got(x.size());
  for (Index i = kRows - 1; i >= 0; --i) xr.insert(xr.end(), x.begin() + i * kCols, x.begin() + (i + 1) * kCols);
  Kernels::DropoutMask reversed = whole;
  reversed.row_keys = reversed_keys.data();
  k.dropout(got.data(), xr.data(), kRows, kCols, reversed, false);
  for (Index i = 0; i < kRows; ++i) {
    for (Index c = 0; c < kCols; ++c) {
      EXPECT_EQ(got[static_cast<std::size_t>((kRows - 1 - i) * kCols + c)],
                want[static_cast<std::size_t>(i * kCols + c)]);
    }
  }
}

// The drop rate is p (to sampling error: 3 standard deviations of 48,000 draws), masks differ by
// site and seed, and p = 0 keeps every value unchanged.
TEST(Dropout, RateSitesAndZero) {
  const CpuKernels k;
  const Index rows = 400, cols = 120;
  std::vector<std::int64_t> keys;
  for (Index i = 0; i < rows; ++i) keys.push_back(i);
  const std::vector<float> ones(static_cast<std::size_t>(rows * cols), 1.0f);
  const auto dropped = [&](const Kernels::DropoutMask& m) {
    std::vector<float> y(ones.size());
    k.dropout(y.data(), ones.data(), rows, cols, m, false);
    return y;
  };
  for (const float p : {0.05f, 0.1f, 0.5f}) {
    const auto y = dropped({keys.data(), 7, 3, p, 0});
    double zeros = 0.0;
    for (const float v : y) zeros += v == 0.0f;
    const double n = static_cast<double>(y.size());
    EXPECT_NEAR(zeros / n, p, 3.0 * std::sqrt(p * (1.0 - p) / n)) << p;
  }
  EXPECT_NE(dropped({keys.data(), 7, 3, 0.5f, 0}), dropped({keys.data(), 7, 4, 0.5f, 0}));
  EXPECT_NE(dropped({keys.data(), 7, 3, 0.5f, 0}), dropped({keys.data(), 8, 3, 0.5f, 0}));
  const auto x = testing::random_uniform(ones.size(), 4);
  std::vector<float> y(x.size());
  k.dropout(y.data(), x.data(), rows, cols, {keys.data(), 7, 3, 0.0f, 0}, false);
  EXPECT_EQ(y, x);
}

}  // namespace
}  // namespace spin::kernels
