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

}  // namespace
}  // namespace spin::kernels
