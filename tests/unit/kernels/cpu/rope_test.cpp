#include <gtest/gtest.h>

#include <cmath>

#include "common/test_util.h"
#include "core/dtype.h"
#include "kernels/cpu/cpu_kernels.h"
#include "model/rope.h"
#include "unit/kernels/reference.h"

namespace spin::kernels {
namespace {

using testing::to_double;

struct RopeCase {
  int n = 6, heads = 3, hd = 16;
  float theta = 10000.0f;
  std::vector<std::int32_t> positions = {0, 1, 2, 37, 100, 255};
  model::RopeTable table{16, 256, 10000.0f};
};

TEST(Rope, ForwardMatchesHuggingFaceRotateHalf) {
  const CpuKernels k;
  RopeCase c;
  auto x = testing::random_vector(c.n * c.heads * c.hd, 1);
  const auto want = testing::ref::rope(to_double(x), c.positions, c.n, c.heads, c.hd, c.theta);
  k.rope_forward(x.data(), c.positions.data(), c.table.cos(), c.table.sin(), c.n, c.heads, c.hd, c.hd,
                 RopePairs::Halves);
  // Angles up to 255 rad in float32 (as Hugging Face computes them): ~2e-5 absolute.
  testing::expect_close(x, want, 0, 5e-5, "rope");
}

TEST(Rope, BackwardIsTheAdjointAndMatchesFiniteDifferences) {
  const CpuKernels k;
  RopeCase c;
  const std::size_t size = static_cast<std::size_t>(c.n * c.heads * c.hd);
  auto x = testing::random_vector(size, 2);
  const auto y = testing::random_vector(size, 3);
  // <R x, y> == <x, R^T y>
  auto rx = x;
  k.rope_forward(rx.data(), c.positions.data(), c.table.cos(), c.table.sin(), c.n, c.heads, c.hd, c.hd,
                 RopePairs::Halves);
  auto rty = y;
  k.rope_backward(rty.data(), c.positions.data(), c.table.cos(), c.table.sin(), c.n, c.heads, c.hd, c.hd,
                  RopePairs::Halves);
  double lhs = 0, rhs = 0;
  for (std::size_t i = 0; i < size; ++i) {
    lhs += static_cast<double>(rx[i]) * y[i];
    rhs += static_cast<double>(x[i]) * rty[i];
  }
  EXPECT_NEAR(lhs, rhs, 1e-4 * std::max(1.0, std::fabs(lhs)));
  // The reference: rotation by -angle.
  testing::expect_close(rty, testing::ref::rope(to_double(y), c.positions, c.n, c.heads, c.hd,
                                                c.theta, -1.0),
                        0, 5e-5, "backward vs naive");
  const auto loss = [&] {
    auto t = x;
    k.rope_forward(t.data(), c.positions.data(), c.table.cos(), c.table.sin(), c.n, c.heads, c.hd, c.hd,
                   RopePairs::Halves);
    return testing::weighted_sum(t, y);
  };
  testing::check_gradient(x, rty, loss, 1e-2, 1e-3, 1e-4, "vs finite differences");
}

// Mixed precision: RoPE on bf16 values is the float32 rotation of the widened values, rounded
// back to bf16 -- bitwise.
TEST(Rope, Bf16IsTheFloat32RotationOfTheWidenedValuesRounded) {
  const CpuKernels k;
  RopeCase c;
  const auto x = testing::random_vector(c.n * c.heads * c.hd, 3);
  const auto count = static_cast<Index>(x.size());
  std::vector<std::uint16_t> x16(x.size());
  k.to_bf16(x16.data(), x.data(), count);
  std::vector<float> wide(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) wide[i] = bf16_to_f32(x16[i]);
  k.rope_forward(wide.data(), c.positions.data(), c.table.cos(), c.table.sin(), c.n, c.heads, c.hd, c.hd,
                 RopePairs::Halves);
  k.rope_forward_bf16(x16.data(), c.positions.data(), c.table.cos(), c.table.sin(), c.n, c.heads, c.hd, c.hd,
                      RopePairs::Halves);
  std::size_t moved = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(x16[i], f32_to_bf16(wide[i])) << i;
    moved += std::abs(bf16_to_f32(x16[i]) - x[i]) > 1e-2f;
  }
  EXPECT_GT(moved, x.size() / 2);  // rotated (position 0 rows excepted), not just rounded
}

// A partial rotary factor (Phi-4-mini's): the first rotary_dim dimensions of each head rotate as
// a head of rotary_dim would (a table of rotary_dim / 2 frequencies), bitwise; the rest pass
// through untouched, forward, backward and in bf16.
TEST(Rope, PartialRotaryRotatesTheFirstDimensionsOfEachHeadOnly) {
  const CpuKernels k;
  RopeCase c;
  const int rotary = 6;
  const model::RopeTable table(rotary, 256, c.theta);
  const auto x = testing::random_vector(c.n * c.heads * c.hd, 4);
  std::vector<float> front(static_cast<std::size_t>(c.n * c.heads * rotary));
  for (int r = 0; r < c.n * c.heads; ++r) {
    for (int i = 0; i < rotary; ++i) {
      front[static_cast<std::size_t>(r * rotary + i)] = x[static_cast<std::size_t>(r * c.hd + i)];
    }
  }
  for (const float sign : {1.0f, -1.0f}) {
    auto partial = x, whole = front;
    if (sign > 0) {
      k.rope_forward(partial.data(), c.positions.data(), table.cos(), table.sin(), c.n, c.heads, c.hd, rotary,
                     RopePairs::Halves);
      k.rope_forward(whole.data(), c.positions.data(), table.cos(), table.sin(), c.n, c.heads, rotary, rotary,
                     RopePairs::Halves);
    } else {
      k.rope_backward(partial.data(), c.positions.data(), table.cos(), table.sin(), c.n, c.heads, c.hd, rotary,
                      RopePairs::Halves);
      k.rope_backward(whole.data(), c.positions.data(), table.cos(), table.sin(), c.n, c.heads, rotary, rotary,
                      RopePairs::Halves);
    }
    for (int r = 0; r < c.n * c.heads; ++r) {
      for (int i = 0; i < c.hd; ++i) {
        const auto at = static_cast<std::size_t>(r * c.hd + i);
        ASSERT_EQ(partial[at], i < rotary ? whole[static_cast<std::size_t>(r * rotary + i)] : x[at]) << r << " " << i;
      }
    }
    if (sign > 0) {  // against the naive rotation of a 6-dimension head
      testing::expect_close(whole, testing::ref::rope(to_double(front), c.positions, c.n, c.heads, rotary, c.theta),
                            0, 5e-5, "partial vs naive");
    }
  }
  std::vector<std::uint16_t> x16(x.size());
  k.to_bf16(x16.data(), x.data(), static_cast<Index>(x.size()));
  auto rotated16 = x16;
  k.rope_forward_bf16(rotated16.data(), c.positions.data(), table.cos(), table.sin(), c.n, c.heads, c.hd, rotary,
                      RopePairs::Halves);
  std::size_t moved = 0;
  for (std::size_t at = 0; at < x.size(); ++at) {
    if (static_cast<int>(at) % c.hd >= rotary) {
      ASSERT_EQ(rotated16[at], x16[at]) << at;
    }
    moved += rotated16[at] != x16[at];
  }
  EXPECT_GT(moved, x.size() / 4);
}

// Cohere's interleaved pairs (2i, 2i + 1) are rotate-half's (i, i + half) with each head's rotated
// dimensions reordered: bitwise the same values, forward, backward and in bf16, over a whole head
// and over part of one (the dimensions past rotary_dim untouched); and pair 0 of head 0 by hand.
TEST(Rope, InterleavedPairsAreRotateHalfOnReorderedDimensions) {
  const CpuKernels k;
  RopeCase c;
  for (const int rotary : {c.hd, 6}) {
    SCOPED_TRACE(rotary);
    const int half = rotary / 2;
    const model::RopeTable table(rotary, 256, c.theta);
    const auto x = testing::random_vector(c.n * c.heads * c.hd, 5);
    // (2i, 2i + 1) -> (i, i + half) within each head's first `rotary` dimensions.
    const auto halves_order = [&](const std::vector<float>& v) {
      auto out = v;
      for (int r = 0; r < c.n * c.heads; ++r) {
        for (int i = 0; i < half; ++i) {
          out[static_cast<std::size_t>(r * c.hd + i)] = v[static_cast<std::size_t>(r * c.hd + 2 * i)];
          out[static_cast<std::size_t>(r * c.hd + i + half)] = v[static_cast<std::size_t>(r * c.hd + 2 * i + 1)];
        }
      }
      return out;
    };
    for (const bool forward : {true, false}) {
      auto interleaved = x;
      auto halves = halves_order(x);
      const auto run = forward ? &CpuKernels::rope_forward : &CpuKernels::rope_backward;
      (k.*run)(interleaved.data(), c.positions.data(), table.cos(), table.sin(), c.n, c.heads, c.hd, rotary,
               RopePairs::Interleaved);
      (k.*run)(halves.data(), c.positions.data(), table.cos(), table.sin(), c.n, c.heads, c.hd, rotary,
               RopePairs::Halves);
      EXPECT_EQ(halves_order(interleaved), halves) << (forward ? "forward" : "backward");
      if (!forward) continue;
      // Row 1 (position 1), head 0, pair 0: (x0 cos - x1 sin, x1 cos + x0 sin), inv_freq 1.
      const std::size_t at = static_cast<std::size_t>(c.heads * c.hd);
      EXPECT_NEAR(interleaved[at], x[at] * std::cos(1.0f) - x[at + 1] * std::sin(1.0f), 1e-6);
      EXPECT_NEAR(interleaved[at + 1], x[at + 1] * std::cos(1.0f) + x[at] * std::sin(1.0f), 1e-6);
      if (rotary < c.hd) {
        EXPECT_EQ(interleaved[at + rotary], x[at + rotary]) << "past the rotated dimensions";
      }
    }
    std::vector<std::uint16_t> x16(x.size());
    k.to_bf16(x16.data(), x.data(), static_cast<Index>(x.size()));
    std::vector<float> wide(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) wide[i] = bf16_to_f32(x16[i]);
    k.rope_forward(wide.data(), c.positions.data(), table.cos(), table.sin(), c.n, c.heads, c.hd, rotary,
                   RopePairs::Interleaved);
    k.rope_forward_bf16(x16.data(), c.positions.data(), table.cos(), table.sin(), c.n, c.heads, c.hd, rotary,
                        RopePairs::Interleaved);
    for (std::size_t i = 0; i < x.size(); ++i) ASSERT_EQ(x16[i], f32_to_bf16(wide[i])) << i;
  }
}

}  // namespace
}  // namespace spin::kernels
