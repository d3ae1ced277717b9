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

// Four experts, two a row: softmax scores, renormalised or not, with a gated shared expert or not.
RouterRule rule(bool normalize, bool shared = false) { return {4, 2, normalize, shared}; }

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
    const MoeRouting r = MoeRouting::route(kLogits, 3, rule(normalize));
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
  const MoeRouting plain = MoeRouting::route(kLogits, 3, rule(false));
  const MoeRouting r = MoeRouting::route(logits, 3, rule(false, true));
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

// `grad` (d loss / d logits) against central differences of loss(route(logits)), three rows, with
// steps that keep each row's choice (the routing is constant where they are taken).
void expect_finite_differences(const std::vector<float>& logits, const std::vector<float>& grad, const RouterRule& r,
                               const std::vector<float>& bias, const std::function<double(const MoeRouting&)>& loss) {
  ASSERT_EQ(grad.size(), logits.size());
  const std::vector<std::int64_t> chosen = MoeRouting::route(logits, 3, r, bias).experts;
  const auto at = [&](const std::vector<float>& l) {
    const MoeRouting moved = MoeRouting::route(l, 3, r, bias);
    EXPECT_EQ(moved.experts, chosen);
    return loss(moved);
  };
  for (std::size_t m = 0; m < logits.size(); ++m) {
    std::vector<float> up = logits, down = logits;
    const float step = 1e-2f;
    up[m] += step, down[m] -= step;
    EXPECT_NEAR(grad[m], (at(up) - at(down)) / (2.0 * step), 2e-4)
        << (r.normalize ? "normalized " : "") << (r.shared ? "shared " : "") << (r.sigmoid ? "sigmoid " : "") << m;
  }
}

// loss = sum dw . weights.
double weighted_sum(const MoeRouting& r, const std::vector<float>& dweights) {
  double sum = 0.0;
  for (std::size_t j = 0; j < dweights.size(); ++j) sum += static_cast<double>(dweights[j]) * r.weights[j];
  return sum;
}

// d loss / d logits, loss = sum dw . weights(logits), against central differences; with a shared
// expert its gate's logits too.
TEST(MoeRouting, LogitsGradientMatchesFiniteDifferences) {
  for (const bool shared : {false, true}) {
    for (const bool normalize : {false, true}) {
      const std::vector<float> logits = router_logits(shared);
      const std::vector<float> dweights = shared ? std::vector<float>{0.7f, -1.2f, 1.1f, 0.3f, 2.0f, -0.8f, -0.5f, 0.9f, 0.6f}
                                                 : std::vector<float>{0.7f, -1.2f, 0.3f, 2.0f, -0.5f, 0.9f};
      const MoeRouting r = MoeRouting::route(logits, 3, rule(normalize, shared));
      expect_finite_differences(logits, r.logits_grad(dweights), rule(normalize, shared), {},
                                [&](const MoeRouting& at) { return weighted_sum(at, dweights); });
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
    const MoeRouting r = MoeRouting::route(logits, 3, rule(false, shared));
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
    expect_finite_differences(logits, grad, rule(false, shared), {},
                              [&](const MoeRouting& at) { return weight * at.balance_loss(); });
  }
}

// ST-MoE's router z-loss: the mean of each row's squared log-sum-exp of the router's logits, against
// that definition in double, and `weight` x its gradient against central differences (with a
// shared expert too: its gate's logits get none).
TEST(MoeRouting, ZLossAndItsGradientMatchTheDefinition) {
  for (const bool shared : {false, true}) {
    const std::vector<float> logits = router_logits(shared);
    const MoeRouting r = MoeRouting::route(logits, 3, rule(true, shared));
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
    expect_finite_differences(logits, grad, rule(true, shared), {},
                              [&](const MoeRouting& at) { return weight * at.z_loss(); });
  }
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// GLM-4.5's router (Glm4MoeMoE.route_tokens_to_experts), worked by hand: eight experts in four
// groups of two, two groups and two experts a row, routed_scaling_factor 2.5.
//   logits  2.0  -1.0 | 0.0  0.5 | 3.0  2.5 | -2.0  1.0
//   s      .881  .269 | .500 .622| .953 .924| .119 .731
//   bias    0     0   | 0.6  0   | -0.5 0   | 0    0.3
//   s+bias .881  .269 | 1.10 .622| .453 .924| .119 1.031
//   groups (two best summed): 1.150, 1.722, 1.377, 1.150 -> groups 1 and 2
// so experts 2 (1.10) and 5 (.924): not 4 (the best score, biased down), not 7 (biased up, in a group
// left out), weighted 2.5 s / (s_2 + s_5). With one group, experts 2 and 7.
TEST(MoeRouting, SigmoidRouterChoosesByBiasedScoreWithinTheBestGroups) {
  const std::vector<float> logits = {2.0f, -1.0f, 0.0f, 0.5f, 3.0f, 2.5f, -2.0f, 1.0f};
  const std::vector<float> bias = {0.0f, 0.0f, 0.6f, 0.0f, -0.5f, 0.0f, 0.0f, 0.3f};
  for (const bool normalize : {true, false}) {
    RouterRule r{8, 2, normalize, false, true, true, 2.5f, 4, 2};
    const MoeRouting grouped = MoeRouting::route(logits, 1, r, bias);
    EXPECT_EQ(grouped.experts, (std::vector<std::int64_t>{2, 5}));
    const double s2 = sigmoid(0.0), s5 = sigmoid(2.5), sum = normalize ? s2 + s5 : 1.0;
    EXPECT_NEAR(grouped.weights[0], 2.5 * s2 / sum, 1e-6);
    EXPECT_NEAR(grouped.weights[1], 2.5 * s5 / sum, 1e-6);
    EXPECT_EQ(grouped.counts, (std::vector<std::int64_t>{0, 0, 1, 0, 0, 1, 0, 0}));
    r.groups = r.groups_chosen = 1;
    EXPECT_EQ(MoeRouting::route(logits, 1, r, bias).experts, (std::vector<std::int64_t>{2, 7}));
  }
  // The softmax stays the router losses' (the z-loss's log-sum-exp of the logits).
  const MoeRouting r = MoeRouting::route(logits, 1, RouterRule{8, 2, true, false, true, true, 1.0f, 1, 1}, bias);
  double sum = 0.0;
  for (const float l : logits) sum += std::exp(static_cast<double>(l));
  EXPECT_NEAR(r.lse[0], std::log(sum), 1e-5);
}

// d loss / d logits of the sigmoid router, loss = sum dw . weights, against central differences:
// renormalised or not, scaled, within groups or not, with GLM-4.5's ungated shared expert (weight 1,
// no logit of its own) or none.
TEST(MoeRouting, SigmoidRouterLogitsGradientMatchesFiniteDifferences) {
  const std::vector<float> logits = router_logits(false), bias = {0.1f, -0.2f, 0.0f, 0.3f};
  for (const bool shared : {false, true}) {
    for (const bool normalize : {false, true}) {
      for (const std::int64_t groups : {1, 2}) {
        const RouterRule r{4, 2, normalize, shared, false, true, 2.5f, groups, 1};
        const MoeRouting routed = MoeRouting::route(logits, 3, r, bias);
        if (shared) {
          for (int i = 0; i < 3; ++i) EXPECT_EQ(routed.weights[static_cast<std::size_t>(3 * i + 2)], 1.0f);
        }
        const std::vector<float> dweights =
            shared ? std::vector<float>{0.7f, -1.2f, 1.1f, 0.3f, 2.0f, -0.8f, -0.5f, 0.9f, 0.6f}
                   : std::vector<float>{0.7f, -1.2f, 0.3f, 2.0f, -0.5f, 0.9f};
        expect_finite_differences(logits, routed.logits_grad(dweights), r, bias,
                                  [&](const MoeRouting& at) { return weighted_sum(at, dweights); });
      }
    }
  }
}

// DeepSeek-V2's router (DeepseekV2Moe.route_tokens_to_experts, group_limited_greedy), worked by hand:
// softmax probabilities of eight experts in four groups of two, the two groups with the largest best
// probability, three experts a row weighted by their probabilities times routed_scaling_factor 16.
//   logits  2.0  -1.0 | 0.0  0.5 | 3.0  -3.0 | -2.0  2.5
//   groups' best: 2.0, 0.5, 3.0, 2.5 -> groups 2 and 3
// so experts 4, 7 and 6 (3.0, 2.5, then -2.0 over -3.0): not 0 (2.0, the third best, in a group left
// out), which greedy (topk_method greedy: one group) takes third.
TEST(MoeRouting, SoftmaxRouterChoosesWithinTheGroupsOfTheBestProbabilities) {
  const std::vector<float> logits = {2.0f, -1.0f, 0.0f, 0.5f, 3.0f, -3.0f, -2.0f, 2.5f};
  double sum = 0.0;
  for (const float l : logits) sum += std::exp(static_cast<double>(l));
  const auto p = [&](std::size_t e) { return std::exp(static_cast<double>(logits[e])) / sum; };
  RouterRule rule{8, 3, false, false, true, false, 16.0f, 4, 2};
  const MoeRouting grouped = MoeRouting::route(logits, 1, rule);
  EXPECT_EQ(grouped.experts, (std::vector<std::int64_t>{4, 7, 6}));
  for (std::size_t j = 0; j < 3; ++j) {
    EXPECT_NEAR(grouped.weights[j], 16.0 * p(static_cast<std::size_t>(grouped.experts[j])), 1e-5) << j;
  }
  EXPECT_EQ(grouped.counts, (std::vector<std::int64_t>{0, 0, 0, 0, 1, 0, 1, 1}));
  rule.groups = rule.groups_chosen = 1;
  EXPECT_EQ(MoeRouting::route(logits, 1, rule).experts, (std::vector<std::int64_t>{4, 7, 0}));
}

// d loss / d logits of DeepSeek-V2's router, loss = sum dw . weights: the softmax's probabilities
// scaled by 16, not renormalised, within groups or not, with its ungated shared experts or none.
TEST(MoeRouting, ScaledSoftmaxRouterLogitsGradientMatchesFiniteDifferences) {
  const std::vector<float> logits = router_logits(false);
  for (const bool shared : {false, true}) {
    for (const std::int64_t groups : {1, 2}) {
      const RouterRule r{4, 2, false, shared, false, false, 16.0f, groups, 1};
      const MoeRouting routed = MoeRouting::route(logits, 3, r);
      const std::vector<float> dweights =
          shared ? std::vector<float>{0.7f, -1.2f, 1.1f, 0.3f, 2.0f, -0.8f, -0.5f, 0.9f, 0.6f}
                 : std::vector<float>{0.7f, -1.2f, 0.3f, 2.0f, -0.5f, 0.9f};
      expect_finite_differences(logits, routed.logits_grad(dweights), r, {},
                                [&](const MoeRouting& at) { return weighted_sum(at, dweights); });
    }
  }
}

}  // namespace
}  // namespace spin::model
