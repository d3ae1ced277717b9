#include <gtest/gtest.h>

#include "common/test_util.h"
#include "kernels/cpu/cpu_kernels.h"
#include "unit/kernels/reference.h"

namespace spin::kernels {
namespace {

TEST(SwiGlu, ForwardAndBackwardMatchNaiveAndFiniteDifferences) {
  const CpuKernels k;
  const int n = 64;
  auto gate = testing::random_vector(n, 1, 3.0f);
  auto up = testing::random_vector(n, 2);
  gate[0] = -90.0f;  // far tails: silu -> 0 and silu -> identity
  gate[1] = 40.0f;
  const auto r = testing::random_vector(n, 3);
  std::vector<float> out(n);
  k.swiglu_forward(out.data(), gate.data(), up.data(), n);
  testing::ref::Vec want(n), dgate_ref(n), dup_ref(n);
  for (int i = 0; i < n; ++i) {
    const double g = gate[i];
    const double s = 1.0 / (1.0 + std::exp(-g));
    want[i] = testing::ref::silu(g) * up[i];
    dgate_ref[i] = r[i] * up[i] * (s + g * s * (1.0 - s));
    dup_ref[i] = r[i] * testing::ref::silu(g);
  }
  testing::expect_close(out, want, 1e-5, 1e-6, "out");
  std::vector<float> dgate(n), dup(n);
  k.swiglu_backward(dgate.data(), dup.data(), r.data(), gate.data(), up.data(), n);
  testing::expect_close(dgate, dgate_ref, 1e-5, 1e-6, "dgate");
  testing::expect_close(dup, dup_ref, 1e-5, 1e-6, "dup");

  const auto loss = [&] {
    k.swiglu_forward(out.data(), gate.data(), up.data(), n);
    return testing::weighted_sum(out, r);
  };
  testing::check_gradient(gate, dgate, loss, 1e-3, 5e-3, 1e-4, "dgate vs finite differences");
  testing::check_gradient(up, dup, loss, 1e-2, 1e-3, 1e-4, "dup vs finite differences");
}

// Mixed precision: the bf16 output is the float32 output rounded.
TEST(SwiGlu, Bf16OutputIsTheRoundedFloat32Output) {
  const CpuKernels k;
  const Index n = 1001;
  const auto gate = testing::random_vector(n, 6, 6.0f), up = testing::random_vector(n, 7);
  std::vector<float> out(n);
  std::vector<std::uint16_t> out16(n), want(n);
  k.swiglu_forward(out.data(), gate.data(), up.data(), n);
  k.swiglu_forward_bf16(out16.data(), gate.data(), up.data(), n);
  k.to_bf16(want.data(), out.data(), n);
  EXPECT_EQ(out16, want);
}

}  // namespace
}  // namespace spin::kernels
