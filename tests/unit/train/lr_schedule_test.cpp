#include "train/lr_schedule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "core/error.h"

namespace spin::train {
namespace {

TEST(LrSchedule, ConstantWithWarmup) {
  const LrSchedule s{LrDecay::Constant, 1e-3, 0.0, 4};
  EXPECT_DOUBLE_EQ(s.at(0), 0.25e-3);
  EXPECT_DOUBLE_EQ(s.at(3), 1e-3);
  EXPECT_DOUBLE_EQ(s.at(100), 1e-3);
}

// Warm-up 2, decay until step 10 from 1.0 to 0.1.
TEST(LrSchedule, LinearAndCosineDecayByHand) {
  const LrSchedule lin{LrDecay::Linear, 1.0, 0.1, 2, 10};
  EXPECT_DOUBLE_EQ(lin.at(0), 0.5);
  EXPECT_DOUBLE_EQ(lin.at(1), 1.0);
  EXPECT_DOUBLE_EQ(lin.at(2), 1.0);
  EXPECT_DOUBLE_EQ(lin.at(6), 0.55);   // halfway: 0.1 + 0.9 * 0.5
  EXPECT_DOUBLE_EQ(lin.at(10), 0.1);
  EXPECT_DOUBLE_EQ(lin.at(50), 0.1);
  const LrSchedule cos{LrDecay::Cosine, 1.0, 0.1, 2, 10};
  EXPECT_DOUBLE_EQ(cos.at(2), 1.0);
  EXPECT_NEAR(cos.at(4), 0.1 + 0.9 * 0.5 * (1 + std::cos(std::numbers::pi / 4)), 1e-15);  // 0.868...
  EXPECT_NEAR(cos.at(6), 0.55, 1e-15);
  EXPECT_DOUBLE_EQ(cos.at(10), 0.1);
}

// Megatron's WSD: warm-up 2, max_lr held, the last 4 steps before step 10 annealed to min_lr by
// each style's coefficient of the anneal's share r (Megatron-LM's optimizer_param_scheduler).
TEST(LrSchedule, WarmupStableDecayByHand) {
  LrSchedule s{LrDecay::Wsd, 1.0, 0.1, 2, 10};
  s.wsd_decay_steps = 4;  // the anneal starts after step 6
  for (const WsdDecay style : {WsdDecay::Linear, WsdDecay::Cosine, WsdDecay::Exponential, WsdDecay::MinusSqrt}) {
    s.wsd_decay = style;
    s.validate();
    EXPECT_DOUBLE_EQ(s.at(0), 0.5);
    EXPECT_DOUBLE_EQ(s.at(2), 1.0);
    EXPECT_DOUBLE_EQ(s.at(6), 1.0);
    EXPECT_NEAR(s.at(10), 0.1, 1e-15);
    EXPECT_NEAR(s.at(40), 0.1, 1e-15);
  }
  const auto halfway = [&](WsdDecay style) {  // step 8: r = 0.5
    s.wsd_decay = style;
    return s.at(8);
  };
  EXPECT_NEAR(halfway(WsdDecay::Linear), 0.1 + 0.9 * 0.5, 1e-15);
  EXPECT_NEAR(halfway(WsdDecay::Cosine), 0.1 + 0.9 * 0.5, 1e-15);
  EXPECT_NEAR(halfway(WsdDecay::Exponential), 0.1 + 0.9 * (2.0 * std::sqrt(0.5) - 1.0), 1e-15);
  EXPECT_NEAR(halfway(WsdDecay::MinusSqrt), 0.1 + 0.9 * (1.0 - std::sqrt(0.5)), 1e-15);
  s.wsd_decay = WsdDecay::Linear;
  EXPECT_NEAR(s.at(7), 0.1 + 0.9 * 0.75, 1e-15);
  s.wsd_decay_steps = 0;
  EXPECT_THROW(s.validate(), Error);
  s.wsd_decay_steps = 9;  // longer than the 8 steps after the warm-up
  EXPECT_THROW(s.validate(), Error);
  EXPECT_EQ(parse_lr_decay("wsd"), LrDecay::Wsd);
  EXPECT_EQ(parse_wsd_decay("minus_sqrt"), WsdDecay::MinusSqrt);
  EXPECT_THROW(parse_wsd_decay("quadratic"), Error);
}

// NeMo's CosineAnnealing, values worked out from nemo/core/optim/lr_scheduler.py.
TEST(LrSchedule, NemoCosineAnnealing) {
  // No constant steps: warm-up (step + 1) / (warmup + 1), cosine over max_steps - warmup.
  const LrSchedule a{LrDecay::NemoCosine, 1.0, 0.0, 3, 0, 0, 11};
  EXPECT_DOUBLE_EQ(a.at(0), 0.25);
  EXPECT_DOUBLE_EQ(a.at(3), 1.0);
  EXPECT_NEAR(a.at(7), 0.5, 1e-15);  // (7 - 3) / (11 - 3) = 0.5
  EXPECT_DOUBLE_EQ(a.at(11), 0.0);
  EXPECT_DOUBLE_EQ(a.at(12), 0.0);
  // Constant steps: warm-up step / warmup, cosine over max - constant - warmup, then min_lr.
  const LrSchedule b{LrDecay::NemoCosine, 1.0, 0.2, 2, 0, 4, 14};  // decay steps 8
  EXPECT_DOUBLE_EQ(b.at(0), 0.0);
  EXPECT_DOUBLE_EQ(b.at(1), 0.5);
  EXPECT_DOUBLE_EQ(b.at(2), 1.0);
  EXPECT_NEAR(b.at(6), 0.6, 1e-15);  // halfway: 0.2 + 0.8 * 0.5
  EXPECT_DOUBLE_EQ(b.at(11), 0.2);
  EXPECT_DOUBLE_EQ(b.at(14), 0.2);
}

TEST(LrSchedule, BadSettingsAreErrors) {
  EXPECT_THROW((LrSchedule{LrDecay::Cosine, 1e-3, 1e-2, 0, 10}.validate()), Error);
  EXPECT_THROW((LrSchedule{LrDecay::Cosine, 1e-3, 0, 10, 10}.validate()), Error);
  EXPECT_THROW((LrSchedule{LrDecay::NemoCosine, 1e-3, 0, 5, 0, 5, 10}.validate()), Error);
  EXPECT_THROW(parse_lr_decay("cosin"), Error);
  EXPECT_EQ(parse_lr_decay("nemo-cosine"), LrDecay::NemoCosine);
}

}  // namespace
}  // namespace spin::train
