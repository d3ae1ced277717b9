#include <gtest/gtest.h>

#include "common/test_util.h"
#include "kernels/cpu/cpu_kernels.h"

namespace spin::kernels {
namespace {

// Three steps of torch.optim.AdamW(lr=0.01, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1),
// computed by PyTorch 1.13 in float64 (values printed to 12 digits).
TEST(AdamW, MatchesPyTorchKnownAnswers) {
  const CpuKernels k;
  std::vector<float> p = {0.5f, -1.0f, 2.0f, 0.0f}, m(4, 0.0f), v(4, 0.0f);
  const std::vector<std::vector<float>> grads = {
      {0.1f, -0.2f, 0.3f, 0.0f}, {-0.05f, 0.4f, 0.1f, 1.0f}, {0.2f, 0.2f, -0.3f, -1.0f}};
  const std::vector<std::vector<double>> want = {
      {0.489500001, -0.9890000005, 1.98800000033, 0.0},
      {0.48632680686, -0.99164473989, 1.97721238428, -0.0073495999204},
      {0.479353031202, -0.995846640758, 1.97475139141, -0.00689595100089}};
  for (std::size_t t = 0; t < grads.size(); ++t) {
    const Kernels::AdamW h{0.01f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, static_cast<std::int64_t>(t + 1)};
    k.adamw_update(p.data(), grads[t].data(), m.data(), v.data(), 4, h);
    testing::expect_close(p, want[t], 2e-7, 1e-7, "parameters");
  }
  testing::expect_close(m, std::vector<double>{0.0236, 0.0398, 0.0033, -0.01}, 1e-6, 1e-8, "m");
  testing::expect_close(v, std::vector<double>{0.00257, 0.011405, 0.00903625, 0.0975}, 1e-6, 1e-9, "v");
}

TEST(AdamW, GradScaleIsAppliedBeforeTheMoments) {
  const CpuKernels k;
  std::vector<float> p1 = {1.0f, -2.0f}, m1(2), v1(2), p2 = p1, m2(2), v2(2);
  const std::vector<float> g = {0.4f, -0.8f}, half = {0.2f, -0.4f};
  k.adamw_update(p1.data(), g.data(), m1.data(), v1.data(), 2, {0.1f, 0.9f, 0.999f, 1e-8f, 0.0f, 0.5f, 1});
  k.adamw_update(p2.data(), half.data(), m2.data(), v2.data(), 2, {0.1f, 0.9f, 0.999f, 1e-8f, 0.0f, 1.0f, 1});
  EXPECT_EQ(p1, p2);
  EXPECT_EQ(m1, m2);
  EXPECT_EQ(v1, v2);
}

TEST(SumSquares, AccumulatesInDouble) {
  const CpuKernels k;
  std::vector<float> x(1000000, 1e-3f);
  x[7] = 3.0f;
  const double small = static_cast<double>(1e-3f) * static_cast<double>(1e-3f);
  EXPECT_NEAR(k.sum_squares(x.data(), static_cast<Index>(x.size())), 9.0 + 999999 * small, 1e-9);  // float sums would be off by ~1e-3
}

}  // namespace
}  // namespace spin::kernels
