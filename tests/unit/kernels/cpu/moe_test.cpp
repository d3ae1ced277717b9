#include <gtest/gtest.h>

#include <vector>

#include "common/test_util.h"
#include "kernels/cpu/cpu_kernels.h"
#include "unit/kernels/reference.h"

namespace spin::kernels {
namespace {

// A mixture of experts' join and its backward against the definitions in double, on a slot
// permutation as the routing makes them; the join without weights (the backward's input
// gradient) sums the slots.
TEST(MoeCombine, JoinAndBackwardMatchTheDefinitions) {
  const CpuKernels k;
  const Index n = 5, top = 3, width = 7;
  std::vector<Index> slots(n * top);
  for (Index s = 0; s < n * top; ++s) slots[s] = (s * 4) % (n * top);  // 4 coprime with 15
  std::vector<float> y(n * top * width), weights(n * top), dout(n * width);
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<float>((i * 37) % 19) / 7.0f - 1.3f;
  for (std::size_t i = 0; i < weights.size(); ++i) weights[i] = 0.1f * static_cast<float>(i % 6) + 0.05f;
  for (std::size_t i = 0; i < dout.size(); ++i) dout[i] = static_cast<float>((i * 11) % 13) / 5.0f - 1.0f;
  std::vector<float> out(n * width, -7.0f), plain(n * width, -7.0f), dy(n * top * width, -7.0f), dw(n * top, -7.0f);
  k.moe_combine(out.data(), y.data(), slots.data(), weights.data(), n, top, width);
  k.moe_combine(plain.data(), y.data(), slots.data(), nullptr, n, top, width);
  k.moe_combine_backward(dy.data(), dw.data(), dout.data(), y.data(), slots.data(), weights.data(), n, top, width);
  testing::ref::Vec want(n * width), want_plain(n * width), want_dy(n * top * width), want_dw(n * top);
  for (Index i = 0; i < n; ++i) {
    for (Index j = 0; j < top; ++j) {
      const Index s = slots[i * top + j];
      double dot = 0.0;
      for (Index c = 0; c < width; ++c) {
        want[i * width + c] += static_cast<double>(weights[i * top + j]) * y[s * width + c];
        want_plain[i * width + c] += y[s * width + c];
        want_dy[s * width + c] = static_cast<double>(weights[i * top + j]) * dout[i * width + c];
        dot += static_cast<double>(dout[i * width + c]) * y[s * width + c];
      }
      want_dw[i * top + j] = dot;
    }
  }
  testing::expect_close(out, want, 1e-6, 1e-6, "out");
  testing::expect_close(plain, want_plain, 1e-6, 1e-6, "out without weights");
  testing::expect_close(dy, want_dy, 1e-6, 1e-6, "dy");
  testing::expect_close(dw, want_dw, 1e-6, 1e-6, "dweights");
}

// Expert parallelism: a slot of -1 is an output another rank computes -- left out of the join, its
// weight's gradient 0, and the rows of y no slot names neither read nor written (dy keeps them).
TEST(MoeCombine, SlotsOfOtherRanksAreLeftOut) {
  const CpuKernels k;
  const Index n = 4, top = 2, width = 3;
  // Rows 0 and 2 each have one output here (y rows 0 and 1), row 1 both (rows 2, 3), row 3 none.
  const std::vector<Index> slots = {0, -1, 2, 3, -1, 1, -1, -1};
  std::vector<float> y(4 * width), weights = {0.5f, 9.0f, 0.25f, 2.0f, 9.0f, 4.0f, 9.0f, 9.0f};
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<float>(i) + 1.0f;
  std::vector<float> dout(n * width, 1.0f), out(n * width, -7.0f), dy(4 * width + width, -7.0f), dw(n * top, -7.0f);
  k.moe_combine(out.data(), y.data(), slots.data(), weights.data(), n, top, width);
  // Row 0: 0.5 y[0]; row 1: 0.25 y[2] + 2 y[3]; row 2: 4 y[1]; row 3: nothing here.
  const std::vector<float> want = {0.5f, 1.0f, 1.5f, 21.75f, 24.0f, 26.25f, 16.0f, 20.0f, 24.0f, 0.0f, 0.0f, 0.0f};
  EXPECT_EQ(out, want);
  k.moe_combine_backward(dy.data(), dw.data(), dout.data(), y.data(), slots.data(), weights.data(), n, top, width);
  EXPECT_EQ(dw, (std::vector<float>{6.0f, 0.0f, 24.0f, 33.0f, 0.0f, 15.0f, 0.0f, 0.0f}));
  EXPECT_EQ(dy, (std::vector<float>{0.5f, 0.5f, 0.5f, 4.0f, 4.0f, 4.0f, 0.25f, 0.25f, 0.25f, 2.0f, 2.0f, 2.0f, -7.0f,
                                    -7.0f, -7.0f}));
}

}  // namespace
}  // namespace spin::kernels
