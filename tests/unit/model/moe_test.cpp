#include "model/moe.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "common/test_util.h"

namespace spin::model {
namespace {

// Three rows over four experts: distinct probabilities, and a tie (row 2's experts 1 and 3) that
// goes to the smaller index.
const std::vector<float> kLogits = {0.5f,  2.0f,  -1.0f, 1.0f,   // row 0: experts 1, 3
                                    3.0f,  -2.0f, 0.0f,  2.5f,   // row 1: experts 0, 3
                                    -1.0f, 1.5f,  0.2f,  1.5f};  // row 2: experts 1, 3 (tie with 3)

std::vector<double> softmax(const float* l, int e) {
  double top = l[0], sum = 0.0;
  for (int i = 1; i < e; ++i) top = std::max(top, static_cast<double>(l[i]));
  std::vector<double> p(static_cast<std::size_t>(e));
  for (int i = 0; i < e; ++i) sum += p[static_cast<std::size_t>(i)] = std::exp(l[i] - top);
  for (double& v : p) v /= sum;
  return p;
}

TEST(MoeRouting, ChoosesTheMostProbableExpertsAndGroupsTheRowsByExpert) {
  for (const bool normalize : {false, true}) {
    const MoeRouting r = MoeRouting::route(kLogits, 3, 4, 2, normalize);
    EXPECT_EQ(r.experts, (std::vector<std::int64_t>{1, 3, 0, 3, 1, 3}));
    EXPECT_EQ(r.counts, (std::vector<std::int64_t>{1, 2, 0, 3}));
    // Expert 0's row 1, expert 1's rows 0 and 2, expert 3's rows 0, 1, 2.
    EXPECT_EQ(r.sources, (std::vector<std::int64_t>{1, 0, 2, 0, 1, 2}));
    for (std::size_t at = 0; at < r.slots.size(); ++at) {
      EXPECT_EQ(r.sources[static_cast<std::size_t>(r.slots[at])], static_cast<std::int64_t>(at / 2)) << at;
    }
    for (int i = 0; i < 3; ++i) {
      const std::vector<double> p = softmax(kLogits.data() + 4 * i, 4);
      const double a = p[static_cast<std::size_t>(r.experts[2 * i])],
                   b = p[static_cast<std::size_t>(r.experts[2 * i + 1])];
      EXPECT_NEAR(r.weights[2 * i], normalize ? a / (a + b) : a, 1e-6) << i;
      EXPECT_NEAR(r.weights[2 * i + 1], normalize ? b / (a + b) : b, 1e-6) << i;
    }
  }
}

// d loss / d logits, loss = sum dw . weights(logits), against central differences (steps that
// keep each row's choice).
TEST(MoeRouting, LogitsGradientMatchesFiniteDifferences) {
  const std::vector<float> dweights = {0.7f, -1.2f, 0.3f, 2.0f, -0.5f, 0.9f};
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 1.0f, 3.0f, -2.0f, 0.0f, 2.5f, -1.0f, 1.5f, 0.2f, 1.1f};
  for (const bool normalize : {false, true}) {
    const MoeRouting r = MoeRouting::route(logits, 3, 4, 2, normalize);
    const std::vector<float> grad = r.logits_grad(dweights, normalize);
    const auto loss = [&](const std::vector<float>& l) {
      const MoeRouting moved = MoeRouting::route(l, 3, 4, 2, normalize);
      EXPECT_EQ(moved.experts, r.experts);
      double sum = 0.0;
      for (std::size_t j = 0; j < dweights.size(); ++j) sum += static_cast<double>(dweights[j]) * moved.weights[j];
      return sum;
    };
    for (std::size_t m = 0; m < logits.size(); ++m) {
      std::vector<float> up = logits, down = logits;
      const float step = 1e-2f;
      up[m] += step, down[m] -= step;
      EXPECT_NEAR(grad[m], (loss(up) - loss(down)) / (2.0 * step), 2e-4) << (normalize ? "normalized " : "") << m;
    }
  }
}

}  // namespace
}  // namespace spin::model
