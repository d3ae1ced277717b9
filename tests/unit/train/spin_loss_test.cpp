// The SPIN loss (train/spin_loss.h): the losses of a pair's scaled margin (sigmoid, smoothed,
// hinge, IPO) and the SFT term -- values, derivatives and each micro-batch's gradient against
// differences --, the settings' errors, the response mask f sums over, and a training step of
// each loss.
#include "train/spin_loss.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/spin_fixture.h"
#include "common/test_util.h"
#include "core/error.h"

namespace spin::train {
namespace {

// The losses of a pair's scaled margin z: values (IPO's against TRL's (margin - 1 / (2 beta))^2
// with beta = lambda), derivatives against central differences, and the gradient a micro-batch
// hands to the policy's sums against differences of its loss.
TEST(SpinLoss, SigmoidSmoothedSigmoidHingeAndIpoLossesAndTheirGradients) {
  const SpinObjective sigmoid, smoothed{SpinObjective::Type::Sigmoid, 0.1}, hinge{SpinObjective::Type::Hinge, 0.0},
      ipo{SpinObjective::Type::Ipo, 0.0}, with_sft{SpinObjective::Type::Sigmoid, 0.0, 0.3};
  const double lambda = 0.7;
  EXPECT_DOUBLE_EQ(sigmoid.value(0.0, lambda), std::log(2.0));
  EXPECT_DOUBLE_EQ(smoothed.value(0.0, lambda), std::log(2.0));
  EXPECT_DOUBLE_EQ(hinge.value(0.0, lambda), 1.0);
  EXPECT_DOUBLE_EQ(hinge.value(2.5, lambda), 0.0);
  EXPECT_DOUBLE_EQ(hinge.value(-1.5, lambda), 2.5);
  EXPECT_NEAR(smoothed.value(1.3, lambda), 0.9 * std::log1p(std::exp(-1.3)) + 0.1 * std::log1p(std::exp(1.3)), 1e-15);
  EXPECT_DOUBLE_EQ(ipo.value(0.0, 0.1), 25.0);  // TRL's first IPO loss at beta 0.1: (0 - 5)^2
  const double margin = 2.0;                     // z = lambda margin
  EXPECT_NEAR(ipo.value(lambda * margin, lambda), (margin - 1.0 / (2.0 * lambda)) * (margin - 1.0 / (2.0 * lambda)),
              1e-12);
  EXPECT_EQ(ipo.derivative(0.5, lambda), 0.0);  // the margin IPO pulls towards, 1 / (2 lambda)
  for (const SpinObjective* o : {&sigmoid, &smoothed, &hinge, &ipo}) {
    for (double z : {-30.0, -2.0, -0.3, 0.0, 0.4, 0.9, 1.7, 30.0}) {
      const double h = 1e-6, numeric = (o->value(z + h, lambda) - o->value(z - h, lambda)) / (2 * h);
      EXPECT_NEAR(o->derivative(z, lambda), numeric, 1e-7 * std::max(1.0, std::fabs(numeric)))
          << SpinObjective::name(o->type) << " at z = " << z;
    }
  }
  // Label smoothing bounds how far a pair is pushed: the loss is smallest at log((1 - eps) / eps).
  EXPECT_NEAR(smoothed.derivative(std::log(0.9 / 0.1), lambda), 0.0, 1e-15);
  EXPECT_LT(sigmoid.derivative(std::log(0.9 / 0.1), lambda), -0.05);

  // A micro-batch of two pairs: d loss / d policy sums against differences of the loss.
  const std::vector<float> reference = {-7.0f, -9.0f, -3.0f, -2.5f};
  for (const SpinObjective* o : {&sigmoid, &smoothed, &hinge, &ipo, &with_sft}) {
    std::vector<float> policy = {-6.0f, -9.5f, -3.25f, -2.0f};
    const auto loss_at = [&](const std::vector<float>& p) {
      SpinLoss l(*o, lambda, 4, {reference});
      std::vector<float> d(4);
      return l.micro_batch_loss(0, p, d);
    };
    SpinLoss loss(*o, lambda, 4, {reference});
    std::vector<float> grad(4);
    loss.micro_batch_loss(0, policy, grad);
    for (std::size_t i = 0; i < policy.size(); ++i) {
      std::vector<float> up = policy, down = policy;
      up[i] += 1e-2f;
      down[i] -= 1e-2f;
      EXPECT_NEAR(grad[i], (loss_at(up) - loss_at(down)) / 2e-2, 1e-5) << SpinObjective::name(o->type) << " sum " << i;
    }
    EXPECT_EQ(loss.totals().pairs, 2.0);
  }
  // The SFT term adds alpha (-log pi(y_real)) a pair: the loss of the micro-batch above by 0.3 x
  // (6 + 3.25) / 4 pairs in the batch, the real sums' gradients by -0.3 / 4.
  {
    const std::vector<float> policy = {-6.0f, -9.5f, -3.25f, -2.0f};
    std::vector<float> plain_grad(4), sft_grad(4);
    const double plain = SpinLoss(sigmoid, lambda, 4, {reference}).micro_batch_loss(0, policy, plain_grad);
    const double sft = SpinLoss(with_sft, lambda, 4, {reference}).micro_batch_loss(0, policy, sft_grad);
    EXPECT_NEAR(sft - plain, 0.3 * (6.0 + 3.25) / 4.0, 1e-12);
    EXPECT_NEAR(sft_grad[0] - plain_grad[0], -0.3f / 4.0f, 1e-7);
    EXPECT_EQ(sft_grad[1], plain_grad[1]);
  }
  // average_log_probs: f is the mean over the response's tokens -- the loss of sums divided by the
  // lengths, each sum's gradient divided by its length; against differences too.
  {
    SpinObjective averaged;
    averaged.average_log_probs = true;
    const std::vector<float> policy = {-6.0f, -9.5f, -3.25f, -2.0f};
    const std::vector<std::int64_t> n = {4, 2, 5, 1};
    std::vector<float> scaled_policy(4), scaled_reference(4), grad(4), scaled_grad(4);
    for (std::size_t i = 0; i < 4; ++i) {
      scaled_policy[i] = policy[i] / static_cast<float>(n[i]);
      scaled_reference[i] = reference[i] / static_cast<float>(n[i]);
    }
    SpinLoss mean_loss(averaged, lambda, 4, {reference}, {n});
    const double value = mean_loss.micro_batch_loss(0, policy, grad);
    const double of_means = SpinLoss(sigmoid, lambda, 4, {scaled_reference}).micro_batch_loss(0, scaled_policy, scaled_grad);
    EXPECT_NEAR(value, of_means, 1e-6);
    for (std::size_t i = 0; i < 4; ++i) {
      EXPECT_NEAR(grad[i], scaled_grad[i] / static_cast<float>(n[i]), 1e-7) << i;
      std::vector<float> up = policy, down = policy, unused(4);
      up[i] += 1e-2f;
      down[i] -= 1e-2f;
      const double numeric = (SpinLoss(averaged, lambda, 4, {reference}, {n}).micro_batch_loss(0, up, unused) -
                              SpinLoss(averaged, lambda, 4, {reference}, {n}).micro_batch_loss(0, down, unused)) / 2e-2;
      EXPECT_NEAR(grad[i], numeric, 1e-5) << i;
    }
    EXPECT_NE(testing::error_of([&] { SpinLoss(averaged, lambda, 4, {reference}); }).find("response token counts"),
              std::string::npos);
  }
  // The hinge stops pushing a pair once its margin reaches 1 / lambda.
  SpinLoss satisfied(hinge, 0.5, 1, {{0.0f, 0.0f}});
  std::vector<float> grad(2);
  EXPECT_EQ(satisfied.micro_batch_loss(0, std::vector<float>{1.5f, -1.0f}, grad), 0.0);
  EXPECT_EQ(grad, (std::vector<float>{0.0f, 0.0f}));
}

TEST(SpinLoss, BadSettingsAreErrorsNamingThem) {
  const auto message = [](const SpinObjective& o) {
    try {
      o.validate();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message({SpinObjective::Type::Sigmoid, 0.5}).find("spin.label_smoothing must be in [0, 0.5)"),
            std::string::npos);
  EXPECT_NE(message({SpinObjective::Type::Hinge, 0.1}).find("applies to the sigmoid loss only, not hinge"),
            std::string::npos);
  EXPECT_EQ(message({SpinObjective::Type::Sigmoid, 0.2}), "");
  EXPECT_EQ(SpinObjective::parse("hinge"), SpinObjective::Type::Hinge);
  EXPECT_EQ(SpinObjective::parse("ipo"), SpinObjective::Type::Ipo);
  EXPECT_NE(message({SpinObjective::Type::Hinge, 0.0, -0.1}).find("spin.sft_loss_weight must be >= 0, got -0.1"),
            std::string::npos);
  EXPECT_EQ(message({SpinObjective::Type::Hinge, 0.0, 0.5}), "");
  EXPECT_NE(message({SpinObjective::Type::Ipo, 0.1}).find("applies to the sigmoid loss only, not ipo"),
            std::string::npos);
  EXPECT_NE(testing::error_of([] { SpinObjective::parse("kto"); }).find("is not sigmoid, hinge or ipo"),
            std::string::npos);
}

// With the hinge loss the first step's loss is l(0) = 1 and the policy moves.
TEST(SpinTrainer, HingeLossTrains) {
  parallel::SelfCommunicator world;
  SpinConfig config = testing::small_spin_config();
  config.objective.type = SpinObjective::Type::Hinge;
  testing::SpinSetup s(world, {1, 1, 1}, config);
  const SpinStepMetrics first = s.trainer.step(0, 0, 0, 1e-2);
  EXPECT_EQ(first.spin.loss, 1.0);
  EXPECT_EQ(first.spin.rewards_actual, 0.0);
  const SpinStepMetrics second = s.trainer.step(0, 0, 1, 1e-2);
  EXPECT_NE(second.spin.rewards_actual, 0.0) << "the policy moved";
  EXPECT_GT(second.spin.margin, 0.0) << "toward the real responses";
}

// With an SFT term the first step's loss is log 2 + alpha (-log pi(y_real)) a pair, the policy
// being the reference; the policy then moves toward the real responses.
TEST(SpinTrainer, SftTermAddsTheRealResponsesNegativeLogLikelihood) {
  parallel::SelfCommunicator world;
  SpinConfig config = testing::small_spin_config();
  config.objective.sft_loss_weight = 0.5;
  testing::SpinSetup s(world, {1, 1, 1}, config);
  const SpinStepMetrics first = s.trainer.step(0, 0, 0, 1e-2);
  EXPECT_NEAR(first.spin.loss, std::log(2.0) - 0.5 * first.spin.logps_actual, 1e-9 * std::fabs(first.spin.loss));
  EXPECT_LT(first.spin.logps_actual, -1.0);
  const SpinStepMetrics second = s.trainer.step(0, 0, 1, 1e-2);
  EXPECT_GT(second.spin.margin, 0.0) << "toward the real responses";
}

// With f averaged over the response tokens the first step's loss is still log 2 (f = 0) and the
// policy moves toward the real responses.
TEST(SpinTrainer, AveragedLogProbsTrain) {
  parallel::SelfCommunicator world;
  SpinConfig config = testing::small_spin_config();
  config.objective.average_log_probs = true;
  testing::SpinSetup s(world, {1, 1, 1}, config);
  const SpinStepMetrics first = s.trainer.step(0, 0, 0, 1e-2);
  EXPECT_DOUBLE_EQ(first.spin.loss, std::log(2.0));
  const SpinStepMetrics second = s.trainer.step(0, 0, 1, 1e-2);
  EXPECT_GT(second.spin.margin, 0.0) << "toward the real responses";
}

// With IPO the first step's loss is (1 / (2 lambda))^2 -- TRL's at beta = lambda -- and the
// policy moves toward the real responses (the margin, 0, is below 1 / (2 lambda)).
TEST(SpinTrainer, IpoLossTrains) {
  parallel::SelfCommunicator world;
  SpinConfig config = testing::small_spin_config();
  config.objective.type = SpinObjective::Type::Ipo;
  testing::SpinSetup s(world, {1, 1, 1}, config);
  const double lambda = config.lambda(0);
  const SpinStepMetrics first = s.trainer.step(0, 0, 0, 1e-2);
  EXPECT_DOUBLE_EQ(first.spin.loss, 1.0 / (4.0 * lambda * lambda));
  const SpinStepMetrics second = s.trainer.step(0, 0, 1, 1e-2);
  EXPECT_GT(second.spin.margin, 0.0) << "toward the real responses";
  EXPECT_NE(second.spin.loss, first.spin.loss) << "the policy moved";
}

// f sums the log-probabilities predicting exactly the response tokens: the first, the last
// (EOS) and none of the prompt. (In spin's packed batches no padding follows EOS; rows after a
// sequence's end belong to the next sequence and its own mask.)
TEST(SpinLoss, TheMaskCoversExactlyTheResponseTokens) {
  const std::vector<std::int32_t> prompt = {5, 6, 7}, response = {8, 9, 2};
  std::vector<std::int32_t> seq = prompt;
  seq.insert(seq.end(), response.begin(), response.end());
  const model::TokenBatch b = model::TokenBatch::pack({{seq, 3}, {{4, 4}, 1}});
  // Row i predicts token i + 1: rows 2, 3, 4 predict the response tokens 8, 9 and EOS.
  const std::vector<float> mask(b.loss_mask.begin(), b.loss_mask.begin() + 6);
  EXPECT_EQ(mask, (std::vector<float>{0, 0, 1, 1, 1, 0}));
  std::vector<float> lp(static_cast<std::size_t>(b.rows()), -1.0f);
  const auto f = [&] {
    double sum = 0;
    for (std::size_t i = 0; i < 6; ++i) sum += b.loss_mask[i] * lp[i];
    return sum;
  };
  const double base = f();
  lp[1] = -7.0f;  // predicts the last prompt token
  EXPECT_EQ(f(), base);
  lp[5] = -7.0f;  // the sequence's last row predicts nothing
  EXPECT_EQ(f(), base);
  lp[4] = -7.0f;  // predicts EOS, the last response token
  EXPECT_NE(f(), base);
}

}  // namespace
}  // namespace spin::train
