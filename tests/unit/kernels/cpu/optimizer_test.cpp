#include <gtest/gtest.h>

#include "common/test_util.h"
#include "core/dtype.h"
#include "kernels/cpu/cpu_kernels.h"

namespace spin::kernels {
namespace {

const Kernels::UpdateRange kFirstFour{0, 4, true}, kFirstTwo{0, 2, true};

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
    k.adamw_update(p.data(), nullptr, grads[t].data(), m.data(), v.data(), &kFirstFour, 1, h);
    testing::expect_close(p, want[t], 2e-7, 1e-7, "parameters");
  }
  testing::expect_close(m, std::vector<double>{0.0236, 0.0398, 0.0033, -0.01}, 1e-6, 1e-8, "m");
  testing::expect_close(v, std::vector<double>{0.00257, 0.011405, 0.00903625, 0.0975}, 1e-6, 1e-9, "v");
}

TEST(AdamW, GradScaleIsAppliedBeforeTheMoments) {
  const CpuKernels k;
  std::vector<float> p1 = {1.0f, -2.0f}, m1(2), v1(2), p2 = p1, m2(2), v2(2);
  const std::vector<float> g = {0.4f, -0.8f}, half = {0.2f, -0.4f};
  k.adamw_update(p1.data(), nullptr, g.data(), m1.data(), v1.data(), &kFirstTwo, 1,
                 {0.1f, 0.9f, 0.999f, 1e-8f, 0.0f, 0.5f, 1});
  k.adamw_update(p2.data(), nullptr, half.data(), m2.data(), v2.data(), &kFirstTwo, 1,
                 {0.1f, 0.9f, 0.999f, 1e-8f, 0.0f, 1.0f, 1});
  EXPECT_EQ(p1, p2);
  EXPECT_EQ(m1, m2);
  EXPECT_EQ(v1, v2);
}

// Three steps of torch.optim.RMSprop(lr=0.01, alpha=0.9, eps=1e-8, weight_decay=0.1), computed
// by PyTorch 1.13 in float64 (values printed to 12 digits); the last parameter's range does not
// decay.
TEST(RmsProp, MatchesPyTorchKnownAnswers) {
  const CpuKernels k;
  std::vector<float> p = {0.5f, -1.0f, 2.0f, 0.0f}, v(4, 0.0f);
  const std::vector<std::vector<float>> grads = {
      {0.1f, -0.2f, 0.3f, 0.0f}, {-0.05f, 0.4f, 0.1f, 1.0f}, {0.2f, 0.2f, -0.3f, -1.0f}};
  const std::vector<std::vector<double>> want = {
      {0.468377230065, -0.968377226732, 1.9683772254, 0.0},
      {0.469079784681, -0.991432399433, 1.95160198429, -0.0316227756017},
      {0.44133513778, -0.999265388046, 1.9577289578, -0.00864692372262}};
  const Kernels::RmsProp h{0.01f, 0.9f, 1e-8f, 0.1f, 1.0f};
  for (std::size_t t = 0; t < grads.size(); ++t) {
    k.rmsprop_update(p.data(), nullptr, grads[t].data(), v.data(), &kFirstFour, 1, h);
    testing::expect_close(p, want[t], 2e-6, 1e-7, "parameters");
  }
  testing::expect_close(v, std::vector<double>{0.00791975498274, 0.0165788715804, 0.0292792754164, 0.190633455512},
                        1e-5, 1e-9, "v");
  // No decay on a range: the gradient alone. And the scale applies before the square.
  std::vector<float> q = {1.0f, -2.0f}, w(2, 0.0f), q2 = q, w2 = w, q16(2);
  const std::vector<float> g = {0.4f, -0.8f}, half = {0.2f, -0.4f};
  const Kernels::UpdateRange undecayed{0, 2, false};
  std::vector<std::uint16_t> copy(2);
  k.rmsprop_update(q.data(), copy.data(), g.data(), w.data(), &undecayed, 1, {0.1f, 0.99f, 1e-8f, 0.5f, 0.5f});
  k.rmsprop_update(q2.data(), nullptr, half.data(), w2.data(), &kFirstTwo, 1, {0.1f, 0.99f, 1e-8f, 0.0f, 1.0f});
  EXPECT_EQ(q, q2);
  EXPECT_EQ(w, w2);
  EXPECT_EQ(copy[0], f32_to_bf16(q[0]));
  EXPECT_EQ(copy[1], f32_to_bf16(q[1]));
}

TEST(SumSquares, AccumulatesInDouble) {
  const CpuKernels k;
  std::vector<float> x(1000000, 1e-3f);
  x[7] = 3.0f;
  const double small = static_cast<double>(1e-3f) * static_cast<double>(1e-3f);
  const Kernels::Range all{0, static_cast<Index>(x.size())};
  EXPECT_NEAR(k.sum_squares(x.data(), &all, 1), 9.0 + 999999 * small, 1e-9);  // float sums would be off by ~1e-3
}

TEST(SumSquares, CountsTheRangesAndNothingBetween) {
  const CpuKernels k;
  const std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8};
  const std::vector<Kernels::Range> ranges = {{1, 2}, {4, 0}, {5, 3}};  // 2,3 and 6,7,8; one empty
  EXPECT_EQ(k.sum_squares(x.data(), ranges.data(), std::ssize(ranges)), 4.0 + 9 + 36 + 49 + 64);
  EXPECT_EQ(k.sum_squares(x.data(), nullptr, 0), 0.0);
}

// Several ranges in one call = one call per range; elements between ranges are untouched;
// weight decay only where a range asks for it; the bf16 copy is the rounding of the result.
TEST(AdamW, RangesInOneCallEqualOneCallEach) {
  const CpuKernels k;
  const std::vector<float> g = testing::random_vector(40, 3);
  const std::vector<float> p0 = testing::random_vector(40, 4);
  const std::vector<Kernels::UpdateRange> ranges = {{0, 7, true}, {9, 13, false}, {22, 0, true}, {25, 15, true}};
  const Kernels::AdamW h{0.05f, 0.9f, 0.95f, 1e-8f, 0.3f, 0.7f, 3};

  std::vector<float> p = p0, m(40, 0.01f), v(40, 0.02f);
  std::vector<std::uint16_t> p16(40, 0xffff);
  k.adamw_update(p.data(), p16.data(), g.data(), m.data(), v.data(), ranges.data(), std::ssize(ranges), h);

  std::vector<float> pe = p0, me(40, 0.01f), ve(40, 0.02f);
  for (const Kernels::UpdateRange& r : ranges) {
    k.adamw_update(pe.data(), nullptr, g.data(), me.data(), ve.data(), &r, 1, h);
  }
  EXPECT_EQ(p, pe);
  EXPECT_EQ(m, me);
  EXPECT_EQ(v, ve);
  for (std::size_t i = 0; i < 40; ++i) {
    const bool inside = i < 7 || (i >= 9 && i < 22) || i >= 25;
    if (inside) {
      EXPECT_NE(p[i], p0[i]) << i;
      EXPECT_EQ(p16[i], f32_to_bf16(p[i])) << i;
    } else {
      EXPECT_EQ(p[i], p0[i]) << i;
      EXPECT_EQ(m[i], 0.01f) << i;
      EXPECT_EQ(p16[i], 0xffff) << i;
    }
  }
  // Decay off: the same as a weight decay of zero on that range alone.
  std::vector<float> pz = p0, mz(40, 0.01f), vz(40, 0.02f);
  const Kernels::UpdateRange decayed{9, 13, true};
  k.adamw_update(pz.data(), nullptr, g.data(), mz.data(), vz.data(), &decayed, 1,
                 {h.lr, h.beta1, h.beta2, h.eps, 0.0f, h.grad_scale, h.step});
  for (std::size_t i = 9; i < 22; ++i) EXPECT_EQ(p[i], pz[i]) << i;
}

}  // namespace
}  // namespace spin::kernels
