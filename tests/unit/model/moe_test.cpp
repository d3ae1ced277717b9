#include "model/moe.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
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

// A shared expert (Qwen2-MoE's): each row's third output, after its two experts', weighted by the
// sigmoid of its gate's logit (after the router's logits), its rows after the grouped ones.
TEST(MoeRouting, PutsTheSharedExpertLastInEveryRow) {
  std::vector<float> logits = kLogits;
  logits.insert(logits.end(), {0.0f, 2.0f, -1.0f});
  const MoeRouting plain = MoeRouting::route(kLogits, 3, 4, 2, false);
  const MoeRouting r = MoeRouting::route(logits, 3, 4, 2, false, true);
  EXPECT_EQ(r.outputs, 3);
  EXPECT_EQ(r.experts, plain.experts);
  EXPECT_EQ(r.sources, plain.sources);
  for (std::size_t i = 0; i < 3; ++i) {
    for (std::size_t j = 0; j < 2; ++j) {
      EXPECT_EQ(r.slots[3 * i + j], plain.slots[2 * i + j]);
      EXPECT_EQ(r.weights[3 * i + j], plain.weights[2 * i + j]);
    }
    EXPECT_EQ(r.slots[3 * i + 2], static_cast<std::int64_t>(6 + i));
    EXPECT_NEAR(r.weights[3 * i + 2], 1.0 / (1.0 + std::exp(-static_cast<double>(logits[12 + i]))), 1e-7);
  }
}

// The router's logits of three rows over four experts, with a shared expert's gate's after them.
std::vector<float> router_logits(bool shared) {
  std::vector<float> logits = {0.5f, 2.0f, -1.0f, 1.0f, 3.0f, -2.0f, 0.0f, 2.5f, -1.0f, 1.5f, 0.2f, 1.1f};
  if (shared) logits.insert(logits.end(), {0.3f, -1.5f, 2.0f});
  return logits;
}

// `grad` (d loss / d logits) against central differences of loss(route(logits)), two experts a row,
// with steps that keep each row's choice (the routing is constant where they are taken).
void expect_finite_differences(const std::vector<float>& logits, const std::vector<float>& grad, bool normalize,
                               bool shared, const std::function<double(const MoeRouting&)>& loss) {
  ASSERT_EQ(grad.size(), logits.size());
  const std::vector<std::int64_t> chosen = MoeRouting::route(logits, 3, 4, 2, normalize, shared).experts;
  const auto at = [&](const std::vector<float>& l) {
    const MoeRouting moved = MoeRouting::route(l, 3, 4, 2, normalize, shared);
    EXPECT_EQ(moved.experts, chosen);
    return loss(moved);
  };
  for (std::size_t m = 0; m < logits.size(); ++m) {
    std::vector<float> up = logits, down = logits;
    const float step = 1e-2f;
    up[m] += step, down[m] -= step;
    EXPECT_NEAR(grad[m], (at(up) - at(down)) / (2.0 * step), 2e-4)
        << (normalize ? "normalized " : "") << (shared ? "shared " : "") << m;
  }
}

// d loss / d logits, loss = sum dw . weights(logits), against central differences; with a shared
// expert its gate's logits too.
TEST(MoeRouting, LogitsGradientMatchesFiniteDifferences) {
  for (const bool shared : {false, true}) {
    for (const bool normalize : {false, true}) {
      const std::vector<float> logits = router_logits(shared);
      const std::vector<float> dweights = shared ? std::vector<float>{0.7f, -1.2f, 1.1f, 0.3f, 2.0f, -0.8f, -0.5f, 0.9f, 0.6f}
                                                 : std::vector<float>{0.7f, -1.2f, 0.3f, 2.0f, -0.5f, 0.9f};
      const MoeRouting r = MoeRouting::route(logits, 3, 4, 2, normalize, shared);
      expect_finite_differences(logits, r.logits_grad(dweights, normalize), normalize, shared, [&](const MoeRouting& at) {
        double sum = 0.0;
        for (std::size_t j = 0; j < dweights.size(); ++j) sum += static_cast<double>(dweights[j]) * at.weights[j];
        return sum;
      });
    }
  }
}

// The load-balancing loss: experts x sum_e f_e P_e (f the fraction of rows routed to e, counted once
// per choice; P the mean probability) against that definition in double, and `weight` x its
// gradient against central differences of weight x the loss (steps that keep each row's choice, so
// f stays); with a shared expert too (its gate's logits get none).
TEST(MoeRouting, BalanceLossAndItsGradientMatchTheDefinition) {
  for (const bool shared : {false, true}) {
    const std::vector<float> logits = router_logits(shared);
    const MoeRouting r = MoeRouting::route(logits, 3, 4, 2, false, shared);
    double want = 0.0;
    for (int e = 0; e < 4; ++e) {
      double p = 0.0;
      for (int i = 0; i < 3; ++i) p += softmax(logits.data() + 4 * i, 4)[static_cast<std::size_t>(e)] / 3.0;
      want += static_cast<double>(r.counts[static_cast<std::size_t>(e)]) / 3.0 * p;
    }
    EXPECT_NEAR(r.balance_loss(), 4.0 * want, 1e-6) << shared;
    const float weight = 0.8f;
    std::vector<float> grad(logits.size(), 0.0f);
    r.add_balance_grad(grad, weight);
    expect_finite_differences(logits, grad, false, shared, [&](const MoeRouting& at) { return weight * at.balance_loss(); });
  }
}

// ST-MoE's router z-loss: the mean of each row's squared log-sum-exp of the router's logits, against
// that definition in double, and `weight` x its gradient against central differences (with a
// shared expert too: its gate's logits get none).
TEST(MoeRouting, ZLossAndItsGradientMatchTheDefinition) {
  for (const bool shared : {false, true}) {
    const std::vector<float> logits = router_logits(shared);
    const MoeRouting r = MoeRouting::route(logits, 3, 4, 2, true, shared);
    double want = 0.0;
    for (int i = 0; i < 3; ++i) {
      double sum = 0.0;
      for (int e = 0; e < 4; ++e) sum += std::exp(static_cast<double>(logits[static_cast<std::size_t>(4 * i + e)]));
      want += std::log(sum) * std::log(sum) / 3.0;
    }
    EXPECT_NEAR(r.z_loss(), want, 1e-5) << shared;
    const float weight = 0.6f;
    std::vector<float> grad(logits.size(), 0.0f);
    r.add_z_grad(grad, weight);
    expect_finite_differences(logits, grad, true, shared, [&](const MoeRouting& at) { return weight * at.z_loss(); });
  }
}

}  // namespace
}  // namespace spin::model
