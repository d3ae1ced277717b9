// Run with 4 ranks. A short SPIN run (2 iterations x 2 steps, reference sync in between) gives
// the same losses, rewards and final weights for (TP, PP, DP) = (1,1,1), (2,2,1), (1,2,2),
// (2,1,2), and (2,2,1), (1,2,2) with two model chunks a stage (interleaved); at the first step of each iteration the
// rewards are exactly 0 on every layout; with activation recomputation on (2,2,1), bitwise the same run; with reused
// generations over two epochs, the same run on every layout and after a restart; and with the previous iteration's
// responses mixed in, the same run on every layout.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <tuple>

#include "checkpoint/model_gather.h"
#include "common/spin_fixture.h"
#include "core/error.h"
#include "mpi/mpi_test.h"

namespace spin::train {
namespace {

struct SpinRun {
  std::vector<double> losses, rewards_actual, rewards_generated, lengths;
  std::vector<ckpt::FullTensor> weights;
};

// `chunks` model chunks a pipeline stage (interleaving; `global_batch` micro-batches a step at DP 1,
// half at DP 2).
SpinRun run(parallel::Communicator& world, parallel::Layout layout, bool distributed, bool recompute = false,
            int chunks = 1, std::int64_t global_batch = 4) {
  SpinConfig config = testing::short_spin_config();
  config.global_batch = global_batch;
  config.generation.sampling.top_k = 8;
  testing::SpinSetup s(world, layout, config, testing::SpinSetup::shape_with_layers(4), distributed,
                       testing::spin_examples(16), nullptr, OptimizerAlgorithm::AdamW, model::WeightStorage::Float32,
                       chunks);
  s.transformer.set_recompute_activations(recompute);
  SpinRun r;
  for (std::int64_t iteration = 0; iteration < 2; ++iteration) {
    for (std::int64_t index = 0; index < 2; ++index) {
      const SpinStepMetrics m = s.trainer.step(iteration, 0, index, 2e-2);
      if (index == 0) {
        EXPECT_EQ(m.spin.rewards_actual, 0.0) << "first step of iteration " << iteration;
        EXPECT_EQ(m.spin.rewards_generated, 0.0) << "first step of iteration " << iteration;
      }
      r.losses.push_back(m.spin.loss);
      r.rewards_actual.push_back(m.spin.rewards_actual);
      r.rewards_generated.push_back(m.spin.rewards_generated);
      r.lengths.push_back(m.spin.generated_length_mean);
    }
    s.trainer.sync_reference();
  }
  r.weights = ckpt::gather_model(s.policy.sharded_state_dict(), s.grid.mp());
  // By name: under interleaving a stage's tensors come in another order.
  std::sort(r.weights.begin(), r.weights.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return r;
}

TEST(SpinLayouts, ShortRunsAgreeAcrossLayouts) {
  parallel::SelfCommunicator self;
  const SpinRun reference_of_4 = run(self, {1, 1, 1}, false);
  // The fourth and fifth with two model chunks a stage: the interleaved schedule, the reference's and the
  // policy's scoring and the generation going round the stages twice.
  // The last: 3 micro-batches a step, no whole groups of the 2 stages (one group of 3).
  const SpinRun reference_of_3 = run(self, {1, 1, 1}, false, false, 1, 3);
  for (auto [layout, distributed, chunks, global_batch] :
       {std::tuple{parallel::Layout{2, 2, 1}, false, 1, 4}, std::tuple{parallel::Layout{1, 2, 2}, true, 1, 4},
        std::tuple{parallel::Layout{2, 1, 2}, false, 1, 4}, std::tuple{parallel::Layout{2, 2, 1}, false, 2, 4},
        std::tuple{parallel::Layout{1, 2, 2}, true, 2, 4}, std::tuple{parallel::Layout{2, 2, 1}, false, 2, 3}}) {
    const SpinRun got = run(spin::testing::mpi_world(), layout, distributed, false, chunks, global_batch);
    const SpinRun& reference = global_batch == 3 ? reference_of_3 : reference_of_4;
    const std::string what = spin::cat("tp ", layout.tp, ", pp ", layout.pp, " x ", chunks, " chunks, dp ", layout.dp,
                                       ", ", global_batch, " micro-batches");
    testing::expect_close(got.lengths, reference.lengths, 0, 0, (what + " generated lengths").c_str());
    testing::expect_close(got.losses, reference.losses, 1e-5, 1e-7, (what + " losses").c_str());
    testing::expect_close(got.rewards_actual, reference.rewards_actual, 1e-4, 1e-6, (what + " rewards").c_str());
    testing::expect_close(got.rewards_generated, reference.rewards_generated, 1e-4, 1e-6, (what + " rewards").c_str());
    if (got.weights.empty()) continue;
    ASSERT_EQ(got.weights.size(), reference.weights.size());
    for (std::size_t t = 0; t < got.weights.size(); ++t) {
      EXPECT_LE(testing::relative_error(got.weights[t].data, reference.weights[t].data), 1e-5)
          << what << ": " << got.weights[t].name;
    }
  }
}

// Activation recomputation on TP 2 x PP 2 (the recomputed forwards redo their TP all-reduces
// inside the 1F1B schedule): the same run, bitwise.
TEST(SpinLayouts, RecomputedActivationsChangeNothing) {
  auto& world = spin::testing::mpi_world();
  const SpinRun kept = run(world, {2, 2, 1}, false);
  const SpinRun again = run(world, {2, 2, 1}, false, true);
  EXPECT_EQ(again.losses, kept.losses);
  EXPECT_EQ(again.rewards_actual, kept.rewards_actual);
  EXPECT_EQ(again.rewards_generated, kept.rewards_generated);
  ASSERT_EQ(again.weights.size(), kept.weights.size());
  for (std::size_t t = 0; t < kept.weights.size(); ++t) {
    EXPECT_EQ(again.weights[t].data, kept.weights[t].data) << kept.weights[t].name;
  }
}

// spin.reuse_generations over 2 epochs of 18 examples (4 full global batches of 4 and 2 left
// out of the first epoch's): the first epoch's responses, shared over DP, and the 2 others,
// generated when the second epoch starts, serve the second epoch on every layout -- DP 4 deals
// each replica other samples than it generated, and leaves two replicas no share of the rest --
// as on one rank; a trainer restarted at the second epoch (an empty cache) continues bitwise.
// The reference sums are kept and shared the same way (spin.cache_ref_logprobs): over the run,
// every sample's two halves are forwarded once, by one replica, however the epochs deal them --
// also with spin.pregenerate, which generates and scores the first epoch at its first step.
SpinRun run_reusing(parallel::Communicator& world, parallel::Layout layout, bool distributed, bool restart,
                    bool pregenerate = false) {
  SpinConfig config = testing::short_spin_config();
  config.generation.sampling.top_k = 8;
  config.epochs = 2;
  config.reuse_generations = true;
  config.pregenerate = pregenerate;
  testing::SpinSetup s(world, layout, config, 2, distributed, 18);
  EXPECT_EQ(s.trainer.steps_per_epoch(), 4);
  std::optional<SpinTrainer> restarted;
  SpinRun r;
  for (std::int64_t epoch = 0; epoch < 2; ++epoch) {
    if (epoch == 1 && restart) {
      restarted.emplace(s.grid, s.transformer, s.policy, s.grads, s.reference, s.optimizer, s.examples, config);
      // As spin train restores them from a checkpoint (the responses are replayed instead).
      EXPECT_TRUE(restarted->restore_ref_logprobs_cache(s.trainer.ref_logprobs_cache(), 0));
    }
    SpinTrainer& trainer = restarted ? *restarted : s.trainer;
    for (std::int64_t index = 0; index < 4; ++index) {
      const SpinStepMetrics m = trainer.step(0, epoch, index, 2e-2);
      r.losses.push_back(m.spin.loss);
      r.rewards_generated.push_back(m.spin.rewards_generated);
      r.lengths.push_back(m.spin.generated_length_mean);
    }
  }
  // Every sample's response once: this replica's share of the 18; and both halves' reference
  // sums once.
  double counts[2] = {static_cast<double>((restarted ? *restarted : s.trainer).responses_generated()),
                      static_cast<double>(s.trainer.reference_sequences_scored())};
  if (restarted) counts[1] += static_cast<double>(restarted->reference_sequences_scored());
  if (s.grid.tp_rank() != 0 || s.grid.pp_rank() != 0) counts[0] = counts[1] = 0.0;
  s.grid.world().all_reduce(counts, 2);
  EXPECT_EQ(counts[0], 18.0);
  EXPECT_EQ(counts[1], 2 * 18.0);
  r.weights = ckpt::gather_model(s.policy.sharded_state_dict(), s.grid.mp());
  return r;
}

TEST(SpinLayouts, ReusedGenerationsAgreeAcrossLayoutsAndRestarts) {
  parallel::SelfCommunicator self;
  const SpinRun reference = run_reusing(self, {1, 1, 1}, false, false);
  auto& world = spin::testing::mpi_world();
  for (auto [layout, distributed, restart, pregenerate] :
       {std::tuple{parallel::Layout{1, 1, 4}, false, false, false}, std::tuple{parallel::Layout{1, 2, 2}, true, false, false},
        std::tuple{parallel::Layout{2, 1, 2}, false, true, false}, std::tuple{parallel::Layout{1, 2, 2}, false, false, true}}) {
    const SpinRun got = run_reusing(world, layout, distributed, restart, pregenerate);
    const std::string what = spin::cat("tp ", layout.tp, ", pp ", layout.pp, ", dp ", layout.dp,
                                       restart ? ", restarted" : "", pregenerate ? ", pregenerated" : "");
    testing::expect_close(got.lengths, reference.lengths, 0, 0, (what + " generated lengths").c_str());
    // 8 steps (twice the run above's), losses down to 1e-2: float32 rounding's 1e-5 relative
    // accumulates to ~3e-5 by the end.
    testing::expect_close(got.losses, reference.losses, 1e-4, 1e-6, (what + " losses").c_str());
    testing::expect_close(got.rewards_generated, reference.rewards_generated, 1e-4, 1e-6, (what + " rewards").c_str());
    if (got.weights.empty()) continue;
    for (std::size_t t = 0; t < got.weights.size(); ++t) {
      EXPECT_LE(testing::relative_error(got.weights[t].data, reference.weights[t].data), 1e-5)
          << what << ": " << got.weights[t].name;
    }
  }
  // Restarted at the same layout: bitwise.
  const SpinRun straight = run_reusing(world, {2, 1, 2}, false, false);
  const SpinRun again = run_reusing(world, {2, 1, 2}, false, true);
  EXPECT_EQ(again.losses, straight.losses);
  EXPECT_EQ(again.rewards_generated, straight.rewards_generated);
}

// spin.mix_previous_iteration, one epoch an iteration, 18 examples: iteration 1's 4 steps leave
// 2 out, which the reference sync generates (DP 4 leaves two replicas no share of them); iteration
// 2's 9 steps visit the 36 samples of both iterations' responses. The same run on every layout.
SpinRun run_mixing(parallel::Communicator& world, parallel::Layout layout, bool distributed) {
  SpinConfig config = testing::short_spin_config();
  config.generation.sampling.top_k = 8;
  config.reuse_generations = true;
  config.mix_previous_iteration = true;
  testing::SpinSetup s(world, layout, config, 2, distributed, 18);
  SpinRun r;
  for (std::int64_t iteration = 0; iteration < 2; ++iteration) {
    for (std::int64_t index = 0; index < s.trainer.steps_per_epoch(iteration); ++index) {
      const SpinStepMetrics m = s.trainer.step(iteration, 0, index, 2e-2);
      r.losses.push_back(m.spin.loss);
      r.rewards_generated.push_back(m.spin.rewards_generated);
      r.lengths.push_back(m.spin.generated_length_mean);
    }
    s.trainer.sync_reference();
  }
  // Each iteration's 18 responses generated once over the replicas.
  double generated = s.grid.tp_rank() == 0 && s.grid.pp_rank() == 0 ? static_cast<double>(s.trainer.responses_generated()) : 0.0;
  s.grid.world().all_reduce(&generated, 1);
  EXPECT_EQ(generated, 2 * 18.0);
  r.weights = ckpt::gather_model(s.policy.sharded_state_dict(), s.grid.mp());
  return r;
}

TEST(SpinLayouts, MixingIterationsAgreeAcrossLayouts) {
  parallel::SelfCommunicator self;
  const SpinRun reference = run_mixing(self, {1, 1, 1}, false);
  ASSERT_EQ(reference.losses.size(), 4u + 9u);
  for (auto [layout, distributed] : {std::pair{parallel::Layout{1, 1, 4}, false}, std::pair{parallel::Layout{2, 2, 1}, false},
                                     std::pair{parallel::Layout{1, 2, 2}, true}}) {
    const SpinRun got = run_mixing(spin::testing::mpi_world(), layout, distributed);
    const std::string what = spin::cat("tp ", layout.tp, ", pp ", layout.pp, ", dp ", layout.dp);
    testing::expect_close(got.lengths, reference.lengths, 0, 0, (what + " generated lengths").c_str());
    testing::expect_close(got.losses, reference.losses, 1e-4, 1e-6, (what + " losses").c_str());
    testing::expect_close(got.rewards_generated, reference.rewards_generated, 1e-4, 1e-6, (what + " rewards").c_str());
    // 13 steps (the run above's 8 reach 1e-5): float32 rounding's drift grows with them.
    for (std::size_t t = 0; t < got.weights.size(); ++t) {
      EXPECT_LE(testing::relative_error(got.weights[t].data, reference.weights[t].data), 3e-5)
          << what << ": " << got.weights[t].name;
    }
  }
}

}  // namespace
}  // namespace spin::train
