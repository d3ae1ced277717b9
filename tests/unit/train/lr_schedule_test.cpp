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
