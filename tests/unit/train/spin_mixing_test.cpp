// spin.mix_previous_iteration (the SPIN code's training of iteration t on the data of t and t-1)
// and the run shape it gives spin train.
#include <gtest/gtest.h>

#include <optional>
#include <set>

#include "common/spin_fixture.h"
#include "core/error.h"
#include "train/run_shape.h"
#include "train/spin_trainer.h"

namespace spin::train {
namespace {

// The tokens of each response in a reuse_cache() / previous_responses() list, by example.
std::vector<std::vector<std::int32_t>> responses_in(const std::vector<float>& saved, std::size_t examples) {
  EXPECT_GE(saved.size(), 6u);
  std::size_t at = 5 + static_cast<std::size_t>(saved[2]);  // the header, a flag per step
  const auto count = static_cast<std::size_t>(saved[at++]);
  std::vector<std::vector<std::int32_t>> out(examples);
  for (std::size_t k = 0; k < count; ++k) {
    const auto idx = static_cast<std::size_t>(saved[at]), n = static_cast<std::size_t>(saved[at + 3]);
    for (std::size_t t = 0; t < n; ++t) out.at(idx).push_back(static_cast<std::int32_t>(saved[at + 4 + t]));
    at += 4 + n;
  }
  EXPECT_EQ(at, saved.size());
  return out;
}

TEST(RunShape, PositionsOfIterationsWithOtherStepsPerEpoch) {
  const RunShape shape(2, {4, 9, 9});
  EXPECT_EQ(shape.iterations(), 3);
  EXPECT_EQ(shape.steps_in_iteration(1), 18);
  EXPECT_EQ(shape.first_step(1), 8);
  EXPECT_EQ(shape.first_step(2), 26);
  EXPECT_EQ(shape.total(), 44);
  const auto is = [&](std::int64_t step, std::int64_t iteration, std::int64_t epoch, std::int64_t index) {
    const RunPosition p = shape.at(step);
    EXPECT_EQ(p.step, step);
    EXPECT_EQ(p.iteration, iteration) << "step " << step;
    EXPECT_EQ(p.epoch, epoch) << "step " << step;
    EXPECT_EQ(p.index, index) << "step " << step;
  };
  is(0, 0, 0, 0);
  is(3, 0, 0, 3);
  is(4, 0, 1, 0);
  is(8, 1, 0, 0);
  is(16, 1, 0, 8);
  is(17, 1, 1, 0);
  is(26, 2, 0, 0);
  is(43, 2, 1, 8);
  is(44, 3, 0, 0);  // the end
  // Visiting every step in order gives every position once, in order.
  std::int64_t step = 0;
  for (std::int64_t k = 0; k < 3; ++k) {
    for (std::int64_t e = 0; e < 2; ++e) {
      for (std::int64_t i = 0; i < shape.steps_per_epoch(k); ++i) is(step++, k, e, i);
    }
  }
  EXPECT_THROW(shape.at(45), Error);
  EXPECT_THROW(shape.steps_per_epoch(3), Error);
  EXPECT_THROW(RunShape(2, {4, 0}), Error);
  EXPECT_THROW(RunShape(0, {4}), Error);
}

TEST(RunShape, MixingDoublesTheSamplesOfLaterIterations) {
  SpinConfig config = testing::small_spin_config();  // 2 iterations, global batch 4
  config.iterations = 3;
  config.kl_penalty = {0.5};
  config.reuse_generations = true;
  const RunShape plain = spin_run_shape(config, 18, 1);
  EXPECT_EQ(plain.steps_per_epoch(0), 4);
  EXPECT_EQ(plain.steps_per_epoch(2), 4);
  config.mix_previous_iteration = true;
  const RunShape mixed = spin_run_shape(config, 18, 1);
  EXPECT_EQ(mixed.steps_per_epoch(0), 4);
  EXPECT_EQ(mixed.steps_per_epoch(1), 9) << "36 samples: none left out";
  EXPECT_EQ(mixed.steps_per_epoch(2), 9);
  parallel::SelfCommunicator world;
  testing::SpinSetup s(world, {1, 1, 1}, config, 2, false, 18);
  EXPECT_EQ(s.trainer.steps_per_epoch(0), 4);
  EXPECT_EQ(s.trainer.steps_per_epoch(1), 9);
}

TEST(SpinConfig, MixingNeedsTheReferencesOwnFixedResponses) {
  SpinConfig c = testing::small_spin_config();
  c.mix_previous_iteration = true;
  EXPECT_THROW(c.validate(), Error) << "without spin.reuse_generations";
  c.reuse_generations = true;
  EXPECT_NO_THROW(c.validate());
  c.ref_logprobs_from_sampler = true;
  EXPECT_THROW(c.validate(), Error) << "the previous responses' sampler sums are another reference's";
  c.ref_logprobs_from_sampler = false;
  c.generations_from_data = true;
  EXPECT_THROW(c.validate(), Error) << "responses from the data: list both files instead";
}

// Iteration 2 of a mixing run is the run over 2 x the examples whose generated responses are
// given: first iteration 2's reference's, then iteration 1's -- the SPIN code's offline
// pipeline. The real halves' reference sums are kept by example, so each is forwarded once
// though every example is met twice an epoch (unless both meetings fall in one step). A trainer restarted inside iteration 2 from the
// three caches a checkpoint keeps continues bitwise.
TEST(SpinTrainer, AMixingIterationTrainsOnBothIterationsResponses) {
  SpinConfig mixing = testing::small_spin_config();
  mixing.epochs = 2;
  mixing.reuse_generations = true;
  mixing.pregenerate = true;  // the iteration's responses all at its first step: B's data can be made then
  mixing.mix_previous_iteration = true;
  parallel::SelfCommunicator world_a, world_b, world_c;
  // 18 examples: iteration 1 has 4 steps of 4 an epoch (2 left out), iteration 2 9 steps of 36 samples.
  testing::SpinSetup a(world_a, {1, 1, 1}, mixing, 2, false, 18), c(world_c, {1, 1, 1}, mixing, 2, false, 18);
  for (std::int64_t epoch = 0; epoch < 2; ++epoch) {
    for (std::int64_t index = 0; index < 4; ++index) {
      EXPECT_EQ(a.trainer.step(0, epoch, index, 1e-2).spin.loss, c.trainer.step(0, epoch, index, 1e-2).spin.loss);
    }
  }
  EXPECT_EQ(a.trainer.responses_generated(), 18);
  EXPECT_EQ(a.trainer.reference_sequences_scored(), 2 * 18);
  const auto first = responses_in(a.trainer.reuse_cache(), 18);
  EXPECT_TRUE(a.trainer.previous_responses().empty()) << "none kept in the first iteration";
  a.trainer.sync_reference();
  c.trainer.sync_reference();
  EXPECT_EQ(responses_in(a.trainer.previous_responses(), 18), first) << "kept for the next iteration";
  {
    // A trainer stepping iteration 2 without them cannot.
    SpinTrainer fresh(c.grid, c.transformer, c.policy, c.grads, c.reference, c.optimizer, c.examples, mixing);
    EXPECT_THROW(fresh.step(1, 0, 0, 1e-2), Error);
    EXPECT_FALSE(fresh.restore_previous_responses(a.trainer.previous_responses(), 2)) << "another iteration's";
    EXPECT_FALSE(fresh.restore_previous_responses(a.trainer.reuse_cache(), 1)) << "not a complete set";
  }

  // B: the offline run, from the same weights and a fresh optimizer (A's reset to match).
  a.optimizer.reset_state();
  c.optimizer.reset_state();
  SpinConfig offline = testing::small_spin_config();
  offline.epochs = 2;
  offline.generations_from_data = true;
  std::vector<data::Example> both = a.examples;
  both.insert(both.end(), a.examples.begin(), a.examples.end());
  for (std::size_t i = 0; i < 18; ++i) both[18 + i].generated = first[i];
  testing::SpinSetup b(world_b, {1, 1, 1}, offline, testing::SpinSetup::shape_with_layers(2), false, both);
  b.policy.copy_from(a.policy);
  b.reference.copy_from(a.policy);
  ASSERT_EQ(b.trainer.steps_per_epoch(1), 9);

  std::optional<SpinTrainer> restarted;
  for (std::int64_t epoch = 0; epoch < 2; ++epoch) {
    for (std::int64_t index = 0; index < 9; ++index) {
      const SpinStepMetrics ma = a.trainer.step(1, epoch, index, 1e-2);
      if (epoch == 0 && index == 0) {
        EXPECT_EQ(a.trainer.responses_generated(), 18 + 18) << "only this iteration's responses are generated";
        const auto second = responses_in(a.trainer.reuse_cache(), 18);
        EXPECT_NE(second, first);
        for (std::size_t i = 0; i < 18; ++i) b.examples[i].generated = second[i];
      }
      const SpinStepMetrics mb = b.trainer.step(1, epoch, index, 1e-2);
      // Other packings, other roundings (measured on an AVX-512 machine: 1.2e-6 in a reward,
      // 3.3e-6 relative in a gradient norm; OpenBLAS picks its sgemm kernel by the product's size).
      EXPECT_NEAR(ma.spin.loss, mb.spin.loss, 1e-5) << epoch << " " << index;
      EXPECT_NEAR(ma.spin.rewards_actual, mb.spin.rewards_actual, 1e-5);
      EXPECT_NEAR(ma.spin.rewards_generated, mb.spin.rewards_generated, 1e-5);
      EXPECT_EQ(ma.spin.accuracy, mb.spin.accuracy);
      EXPECT_EQ(ma.spin.generated_length_mean, mb.spin.generated_length_mean);
      EXPECT_NEAR(ma.grad_norm, mb.grad_norm, 2e-5 * ma.grad_norm);
      // C: the same run, its process restarted before the second epoch's fourth step.
      if (epoch == 1 && index == 3) {
        const std::vector<float> cache = c.trainer.reuse_cache(), sums = c.trainer.ref_logprobs_cache(),
                                 previous = c.trainer.previous_responses();
        restarted.emplace(c.grid, c.transformer, c.policy, c.grads, c.reference, c.optimizer, c.examples, mixing);
        ASSERT_TRUE(restarted->restore_previous_responses(previous, 1));
        ASSERT_TRUE(restarted->restore_reuse_cache(cache, 1));
        ASSERT_TRUE(restarted->restore_ref_logprobs_cache(sums, 1));
      }
      SpinTrainer& tc = restarted ? *restarted : c.trainer;
      const SpinStepMetrics mc = tc.step(1, epoch, index, 1e-2);
      EXPECT_EQ(ma.spin.loss, mc.spin.loss) << epoch << " " << index;
      EXPECT_EQ(ma.grad_norm, mc.grad_norm) << epoch << " " << index;
    }
  }
  EXPECT_EQ(a.trainer.responses_generated(), 36);
  // Both samples of an example in one step are scored together, before either is kept.
  std::int64_t together = 0;
  for (std::int64_t index = 0; index < 9; ++index) {
    std::set<std::int64_t> step;
    for (const auto& g : a.trainer.plan(1).micro_batches(2, index, 0)) step.insert(g.begin(), g.end());
    for (std::int64_t i = 0; i < 18; ++i) together += step.contains(i) && step.contains(18 + i) ? 1 : 0;
  }
  EXPECT_EQ(a.trainer.reference_sequences_scored(), 2 * 18 + 18 + together + 36)
      << "each example's ground truth once (twice if both its samples share a step), each of the 36 generated "
         "responses once";
  EXPECT_EQ(b.trainer.reference_sequences_scored(), 2 * 36);
  EXPECT_EQ(restarted->responses_generated(), 0) << "everything came with the caches";
  EXPECT_EQ(restarted->reference_sequences_scored(), 0);
  const std::vector<float> pa = to_host<float>(a.policy.flat()), pb = to_host<float>(b.policy.flat());
  for (std::size_t i = 0; i < pa.size(); ++i) ASSERT_NEAR(pa[i], pb[i], 1e-5) << "parameter " << i;
  EXPECT_EQ(pa, to_host<float>(c.policy.flat()));
  // The run's last iteration keeps nothing for a next.
  a.trainer.sync_reference();
  EXPECT_TRUE(a.trainer.previous_responses().empty());
}

// One epoch an iteration leaves the last partial batch out; the next iteration trains on every
// example's response, so sync_reference() generates those first -- with the old reference, keyed
// as a second epoch would have (the same responses as a two-epoch run's).
TEST(SpinTrainer, MixingCompletesTheResponsesOneEpochLeftOut) {
  SpinConfig one = testing::small_spin_config();
  one.reuse_generations = true;
  one.mix_previous_iteration = true;
  SpinConfig two = one;
  two.epochs = 2;
  parallel::SelfCommunicator world_a, world_b;
  testing::SpinSetup a(world_a, {1, 1, 1}, one, 2, false, 18), b(world_b, {1, 1, 1}, two, 2, false, 18);
  for (std::int64_t index = 0; index < 4; ++index) {
    a.trainer.step(0, 0, index, 1e-2);
    b.trainer.step(0, 0, index, 1e-2);
  }
  EXPECT_EQ(a.trainer.responses_generated(), 16);
  b.trainer.step(0, 1, 0, 1e-2);  // generates the 2 left out
  a.trainer.sync_reference();
  EXPECT_EQ(a.trainer.responses_generated(), 18) << "the 2 the epoch left out";
  const auto kept = responses_in(a.trainer.previous_responses(), 18);
  for (const auto& r : kept) EXPECT_FALSE(r.empty());
  EXPECT_EQ(kept, responses_in(b.trainer.reuse_cache(), 18));
  const SpinStepMetrics m = a.trainer.step(1, 0, 0, 1e-2);
  EXPECT_EQ(m.spin.loss, std::log(2.0)) << "policy = reference at the iteration's start";
  EXPECT_EQ(a.trainer.steps_per_epoch(1), 9);
}

}  // namespace
}  // namespace spin::train
