#include "train/spin_trainer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <optional>
#include <set>

#include "common/spin_fixture.h"
#include "core/error.h"

namespace spin::train {
namespace {

// policy == reference at the start of every iteration: f = 0 for every pair, exactly.
TEST(SpinTrainer, FirstStepOfEveryIterationHasZeroRewardsAndLossLog2) {
  parallel::SelfCommunicator world;
  testing::SpinSetup s(world, {1, 1, 1}, testing::small_spin_config());
  for (std::int64_t iteration = 0; iteration < 2; ++iteration) {
    const SpinStepMetrics first = s.trainer.step(iteration, 0, 0, 1e-2);
    EXPECT_EQ(first.spin.rewards_actual, 0.0);
    EXPECT_EQ(first.spin.rewards_generated, 0.0);
    EXPECT_DOUBLE_EQ(first.spin.loss, std::log(2.0));
    EXPECT_EQ(first.spin.accuracy, 0.0);
    const SpinStepMetrics second = s.trainer.step(iteration, 0, 1, 1e-2);
    EXPECT_NE(second.spin.rewards_actual, 0.0) << "the policy moved";
    EXPECT_NE(second.spin.loss, std::log(2.0));
    s.trainer.sync_reference();
  }
}

// Loss, rewards and accuracy against a computation from plain forward passes (what spin score
// does) of policy and reference over greedy responses.
TEST(SpinTrainer, EvaluationMatchesAnIndependentComputationFromSequenceScores) {
  parallel::SelfCommunicator world;
  SpinConfig config = testing::small_spin_config();
  config.generation.sampling.greedy = true;  // responses independent of the noise keys
  testing::SpinSetup s(world, {1, 1, 1}, config);
  s.trainer.step(0, 0, 0, 3e-2);
  s.trainer.step(0, 0, 1, 3e-2);  // policy != reference now

  const std::vector<data::Example> eval(s.examples.begin(), s.examples.begin() + 6);
  const SpinMetrics got = s.trainer.evaluate(eval, 0);

  generate::Generator ref_gen(s.grid, s.transformer, s.reference);
  std::vector<std::vector<std::int32_t>> prompts;
  for (const auto& e : eval) prompts.push_back(e.prompt);
  const auto responses = ref_gen.generate(prompts, std::vector<std::uint64_t>(prompts.size(), 0), config.generation);
  const auto score = [&](const model::ModelWeights& w, const std::vector<std::int32_t>& prompt,
                         const std::vector<std::int32_t>& response) {
    std::vector<std::int32_t> seq = prompt;
    seq.insert(seq.end(), response.begin(), response.end());
    return static_cast<double>(s.transformer.forward(w, model::TokenBatch::pack({{seq, static_cast<std::int64_t>(prompt.size())}}))
                                   .sequence_logprobs[0]);
  };
  double loss = 0, actual = 0, generated = 0, correct = 0, nll = 0, tokens = 0, logp_real = 0, logp_gen = 0;
  const double lambda = 0.5;
  for (std::size_t i = 0; i < eval.size(); ++i) {
    const double f_real = score(s.policy, eval[i].prompt, eval[i].response) - score(s.reference, eval[i].prompt, eval[i].response);
    const double f_gen = score(s.policy, eval[i].prompt, responses[i].tokens) - score(s.reference, eval[i].prompt, responses[i].tokens);
    loss += std::log1p(std::exp(-lambda * (f_real - f_gen)));
    actual += lambda * f_real;
    generated += lambda * f_gen;
    correct += f_real > f_gen;
    nll -= score(s.policy, eval[i].prompt, eval[i].response);
    tokens += static_cast<double>(eval[i].response.size());
    logp_real += score(s.policy, eval[i].prompt, eval[i].response);
    logp_gen += score(s.policy, eval[i].prompt, responses[i].tokens);
  }
  const double n = static_cast<double>(eval.size());
  EXPECT_NEAR(got.loss, loss / n, 1e-5);
  EXPECT_NEAR(got.rewards_actual, actual / n, 1e-5);
  EXPECT_NEAR(got.rewards_generated, generated / n, 1e-5);
  EXPECT_NEAR(got.accuracy, correct / n, 1e-12);
  EXPECT_NEAR(got.sft_nll, nll / tokens, 1e-5);
  EXPECT_NEAR(got.logps_actual, logp_real / n, 1e-4);
  EXPECT_NEAR(got.logps_generated, logp_gen / n, 1e-4);
  EXPECT_LT(got.logps_actual, 0.0);
  EXPECT_GT(std::fabs(got.margin), 1e-4) << "a non-trivial batch";
}

// Validation every few steps: the reference's responses and sums of an iteration's evaluation
// are the same each time (noise keyed by the iteration, the reference frozen), so a later
// evaluation runs only the policy -- and gives exactly what an evaluation from scratch gives.
// Another iteration, another set of examples or a reference sync start afresh; under
// ref_offload a reused evaluation uploads nothing.
TEST(SpinTrainer, RepeatedEvaluationsOfAnIterationRunOnlyThePolicy) {
  parallel::SelfCommunicator world;
  SpinConfig config = testing::small_spin_config();
  config.ref_offload = true;
  testing::SpinSetup s(world, {1, 1, 1}, config);
  const std::vector<data::Example> eval(s.examples.begin(), s.examples.begin() + 6);
  s.trainer.step(0, 0, 0, 3e-2);
  const SpinMetrics first = s.trainer.evaluate(eval, 0);
  const std::int64_t uploads = s.trainer.reference_uploads();
  const SpinMetrics again = s.trainer.evaluate(eval, 0);
  EXPECT_EQ(s.trainer.evaluation_rollouts(), 1);
  EXPECT_EQ(s.trainer.reference_uploads(), uploads) << "no reference work";
  EXPECT_EQ(again.loss, first.loss);
  EXPECT_EQ(again.rewards_generated, first.rewards_generated);
  EXPECT_EQ(again.sft_nll, first.sft_nll);
  s.trainer.step(0, 0, 1, 3e-2);  // the policy moves
  const std::int64_t uploads_after_step = s.trainer.reference_uploads();
  const SpinMetrics moved = s.trainer.evaluate(eval, 0);
  EXPECT_EQ(s.trainer.evaluation_rollouts(), 1);
  EXPECT_EQ(s.trainer.reference_uploads(), uploads_after_step);
  EXPECT_NE(moved.loss, first.loss);
  SpinTrainer fresh(s.grid, s.transformer, s.policy, s.grads, s.reference, s.optimizer, s.examples, config);
  const SpinMetrics scratch = fresh.evaluate(eval, 0);
  EXPECT_EQ(fresh.evaluation_rollouts(), 1);
  EXPECT_EQ(moved.loss, scratch.loss);
  EXPECT_EQ(moved.rewards_actual, scratch.rewards_actual);
  EXPECT_EQ(moved.rewards_generated, scratch.rewards_generated);
  EXPECT_EQ(moved.accuracy, scratch.accuracy);
  EXPECT_EQ(moved.sft_nll, scratch.sft_nll);
  s.trainer.evaluate(eval, 1);
  EXPECT_EQ(s.trainer.evaluation_rollouts(), 2) << "another iteration's noise";
  const std::vector<data::Example> other(s.examples.begin(), s.examples.begin() + 4);
  s.trainer.evaluate(other, 1);
  EXPECT_EQ(s.trainer.evaluation_rollouts(), 3) << "other examples";
  s.trainer.sync_reference();
  s.trainer.evaluate(other, 1);
  EXPECT_EQ(s.trainer.evaluation_rollouts(), 4) << "a new reference";
}

// spin.generations = data: the generated halves are the examples' own and nothing is generated.
// Given the reference's greedy answers, a run is the run that generates them.
TEST(SpinTrainer, GeneratedResponsesGivenWithTheDataReplaceTheReferencesSamples) {
  parallel::SelfCommunicator world;
  SpinConfig online = testing::small_spin_config();
  online.generation.sampling.greedy = true;
  testing::SpinSetup a(world, {1, 1, 1}, online);

  std::vector<data::Example> given = a.examples;
  {
    generate::Generator generator(a.grid, a.transformer, a.reference);
    std::vector<std::vector<std::int32_t>> prompts;
    for (const auto& e : given) prompts.push_back(e.prompt);
    const auto answers = generator.generate(prompts, std::vector<std::uint64_t>(prompts.size(), 0), online.generation);
    for (std::size_t i = 0; i < given.size(); ++i) given[i].generated = answers[i].tokens;
  }
  SpinConfig offline = online;
  offline.generations_from_data = true;
  testing::SpinSetup b(world, {1, 1, 1}, offline, testing::SpinSetup::shape_with_layers(2), false, given);
  for (std::int64_t step = 0; step < 3; ++step) {
    const SpinMetrics x = a.trainer.step(0, 0, step, 1e-2).spin, y = b.trainer.step(0, 0, step, 1e-2).spin;
    EXPECT_EQ(x.loss, y.loss) << "step " << step;
    EXPECT_EQ(x.rewards_actual, y.rewards_actual);
    EXPECT_EQ(x.rewards_generated, y.rewards_generated);
    EXPECT_EQ(x.generated_length_mean, y.generated_length_mean);
  }
  EXPECT_GT(a.trainer.responses_generated(), 0);
  EXPECT_EQ(b.trainer.responses_generated(), 0) << "nothing generated";

  // Other given responses, other pairs.
  for (auto& e : given) e.generated = {5, 2};
  testing::SpinSetup c(world, {1, 1, 1}, offline, testing::SpinSetup::shape_with_layers(2), false, given);
  EXPECT_EQ(c.trainer.step(0, 0, 0, 1e-2).spin.generated_length_mean, 2.0);

  // The sampler's log-probabilities exist only for the reference's own samples.
  offline.ref_logprobs_from_sampler = true;
  EXPECT_THROW(offline.validate(), Error);
}

TEST(SpinTrainer, ReferenceSyncCopiesLocallyWithoutCommunicating) {
  parallel::SelfCommunicator world;
  testing::SpinSetup s(world, {1, 1, 1}, testing::small_spin_config());
  s.trainer.step(0, 0, 0, 1e-2);
  const std::vector<parallel::Communicator*> all = {&s.grid.tp(), &s.grid.pp(), &s.grid.dp(),
                                                    &s.grid.mp(), &s.grid.embedding(), &world};
  for (parallel::Communicator* c : all) c->reset_stats();
  s.trainer.sync_reference();
  for (parallel::Communicator* c : all) {
    for (std::size_t op = 0; op < parallel::kNumCommOps; ++op) {
      EXPECT_EQ(c->stats().calls[op], 0u);
      EXPECT_EQ(c->stats().bytes[op], 0u);
    }
  }
  for (std::int64_t i = 0; i < s.policy.flat().numel(); ++i) ASSERT_EQ(s.policy.flat().f32()[i], s.reference.flat().f32()[i]);
}

// spin.ref_offload: the reference swapped into the policy's buffers for its work (through the
// gradient buffer) changes no result -- steps across a reference sync, evaluation, the final
// policy and reference are bitwise those of a run without. Were the reference not swapped in,
// the second step (policy != reference) would differ; were the policy not put back, every
// later step would.
TEST(SpinTrainer, ReferenceOffloadChangesNothing) {
  parallel::SelfCommunicator world_plain, world_offload;
  SpinConfig offloaded = testing::small_spin_config();
  offloaded.ref_offload = true;
  testing::SpinSetup plain(world_plain, {1, 1, 1}, testing::small_spin_config());
  testing::SpinSetup swap(world_offload, {1, 1, 1}, offloaded);
  for (std::int64_t iteration = 0; iteration < 2; ++iteration) {
    for (std::int64_t index = 0; index < 2; ++index) {
      const SpinStepMetrics a = plain.trainer.step(iteration, 0, index, 1e-2);
      const SpinStepMetrics b = swap.trainer.step(iteration, 0, index, 1e-2);
      EXPECT_EQ(a.spin.loss, b.spin.loss);
      EXPECT_EQ(a.spin.rewards_actual, b.spin.rewards_actual);
      EXPECT_EQ(a.spin.rewards_generated, b.spin.rewards_generated);
      EXPECT_EQ(a.grad_norm, b.grad_norm);
    }
    EXPECT_EQ(plain.trainer.evaluate(plain.examples, iteration).loss,
              swap.trainer.evaluate(swap.examples, iteration).loss);
    plain.trainer.sync_reference();
    swap.trainer.sync_reference();
  }
  EXPECT_EQ(to_host<float>(plain.policy.flat()), to_host<float>(swap.policy.flat()));
  EXPECT_EQ(to_host<float>(plain.reference.flat()), to_host<float>(swap.reference.flat()));
}

// Micro-batches by tokens (spin.micro_batch_tokens) cut the step's pairs elsewhere, not into other
// pairs: the same responses, losses and rewards up to the order of float sums, through two iterations;
// the cuts make more micro-batches than the fixed count (where they fall: BatchPlan's
// MicroBatchesByTokensKeepTheSamplesAndTheirOrder).
TEST(SpinTrainer, MicroBatchesByTokensChangeOnlyTheSumsOrder) {
  parallel::SelfCommunicator world_fixed, world_tokens;
  SpinConfig by_tokens = testing::small_spin_config();
  by_tokens.micro_batch = 4;  // the whole step's share: the token cap alone cuts
  by_tokens.micro_batch_tokens = 24;
  testing::SpinSetup fixed(world_fixed, {1, 1, 1}, testing::small_spin_config());
  testing::SpinSetup tokens(world_tokens, {1, 1, 1}, by_tokens);
  std::int64_t micro_batches = 0;
  for (std::int64_t iteration = 0; iteration < 2; ++iteration) {
    for (std::int64_t index = 0; index < 3; ++index) {
      const SpinStepMetrics a = fixed.trainer.step(iteration, 0, index, 1e-2);
      const SpinStepMetrics b = tokens.trainer.step(iteration, 0, index, 1e-2);
      EXPECT_EQ(a.micro_batches, 0) << "counted only by tokens";
      EXPECT_GE(b.micro_batches, 1);
      micro_batches += b.micro_batches;
      EXPECT_NEAR(a.spin.loss, b.spin.loss, 1e-6);
      EXPECT_NEAR(a.spin.rewards_actual, b.spin.rewards_actual, 1e-5);
      EXPECT_NEAR(a.spin.rewards_generated, b.spin.rewards_generated, 1e-5);
      EXPECT_EQ(a.spin.generated_length_mean, b.spin.generated_length_mean) << "the same responses";
      EXPECT_NEAR(a.grad_norm, b.grad_norm, 1e-5 * a.grad_norm);
    }
    fixed.trainer.sync_reference();
    tokens.trainer.sync_reference();
  }
  EXPECT_GT(micro_batches, 6 * 2) << "the fixed count is 2 a step";
  const auto p = to_host<float>(fixed.policy.flat()), q = to_host<float>(tokens.policy.flat());
  EXPECT_LT(testing::relative_error(q, p), 1e-5);
  EXPECT_NE(p, q) << "other sums' order: an exact match would mean no other cut";
}

// The reference in bf16 alone (model.frozen_dtype bf16, model::WeightStorage::FrozenBf16) changes no
// result of a run in bf16 products: the same metrics, bitwise, through two iterations and their
// reference syncs (the policy's bf16 copy copied), resident and offloaded (its bf16 values swapped in,
// the policy's float32 ones parked); the references' values equal as the forward reads them. And the
// policy at an iteration's start equals the reference: loss log 2.
TEST(SpinTrainer, FrozenBf16ReferenceChangesNoResult) {
  for (const bool offload : {false, true}) {
    SCOPED_TRACE(offload ? "offloaded" : "resident");
    SpinConfig config = testing::small_spin_config();
    config.ref_offload = offload;
    parallel::SelfCommunicator world_plain, world_frozen;
    const auto setup = [&](parallel::Communicator& world, model::WeightStorage storage) {
      return std::make_unique<testing::SpinSetup>(
          world, parallel::Layout{1, 1, 1}, config, testing::SpinSetup::shape_with_layers(2), false,
          testing::spin_examples(16), nullptr, OptimizerAlgorithm::AdamW, storage);
    };
    const auto plain = setup(world_plain, model::WeightStorage::Float32);
    const auto frozen = setup(world_frozen, model::WeightStorage::FrozenBf16);
    ASSERT_TRUE(frozen->reference.frozen());
    for (testing::SpinSetup* s : {plain.get(), frozen.get()}) {
      s->policy.enable_bf16(s->k);
      if (!offload) s->reference.enable_bf16(s->k);  // (an offloaded Float32 reference has no copy)
    }
    for (std::int64_t iteration = 0; iteration < 2; ++iteration) {
      for (std::int64_t index = 0; index < 2; ++index) {
        const SpinStepMetrics a = plain->trainer.step(iteration, 0, index, 1e-2);
        const SpinStepMetrics b = frozen->trainer.step(iteration, 0, index, 1e-2);
        EXPECT_EQ(a.spin.loss, b.spin.loss);
        EXPECT_EQ(a.spin.rewards_actual, b.spin.rewards_actual);
        EXPECT_EQ(a.spin.rewards_generated, b.spin.rewards_generated);
        EXPECT_EQ(a.spin.generated_length_mean, b.spin.generated_length_mean);
        EXPECT_EQ(a.grad_norm, b.grad_norm);
        if (index == 0) {
          EXPECT_DOUBLE_EQ(b.spin.loss, std::log(2.0));
        }
      }
      EXPECT_EQ(plain->trainer.evaluate(plain->examples, iteration).loss,
                frozen->trainer.evaluate(frozen->examples, iteration).loss);
      plain->trainer.sync_reference();
      frozen->trainer.sync_reference();
    }
    EXPECT_EQ(to_host<float>(plain->policy.flat()), to_host<float>(frozen->policy.flat()));
    model::ModelWeights rounded(plain->config, plain->dims, plain->stage, 1, Device::Cpu,
                                model::WeightStorage::FrozenBf16);
    rounded.copy_from(plain->reference);
    const Tensor want = rounded.values_on_host(), got = frozen->reference.values_on_host();
    EXPECT_EQ(std::vector<float>(want.f32(), want.f32() + want.numel()),
              std::vector<float>(got.f32(), got.f32() + got.numel()));
  }
}

// spin.reuse_generations: the first epoch's responses serve the iteration's second epoch (no
// generation there but for the samples the first epoch left out), and a trainer that starts in
// the second epoch -- a restarted process: the same weights and optimizer state, an empty cache --
// replays the first epoch's rollouts once and continues bitwise as the uninterrupted one.
// Without reuse the second epoch draws new responses.
TEST(SpinTrainer, ReusedGenerationsServeLaterEpochsAndSurviveARestart) {
  // With the reference's log-probabilities from the forward and from the sampler (whose sums
  // the cache keeps too).
  for (const bool sampler : {false, true}) {
    SCOPED_TRACE(sampler ? "ref_logprobs sampler" : "ref_logprobs forward");
    SpinConfig config = testing::small_spin_config();
    config.epochs = 2;
    config.reuse_generations = true;
    config.ref_logprobs_from_sampler = sampler;
    SpinConfig resampled = config;
    resampled.reuse_generations = false;
    parallel::SelfCommunicator world_a, world_b, world_c, world_d;
    // 18 examples: 4 global batches of 4 an epoch, 2 left out of each (others each epoch).
    testing::SpinSetup a(world_a, {1, 1, 1}, config, 2, false, 18), b(world_b, {1, 1, 1}, config, 2, false, 18);
    testing::SpinSetup c(world_c, {1, 1, 1}, resampled, 2, false, 18);
    testing::SpinSetup d(world_d, {1, 1, 1}, config, 2, false, 18);
    const std::int64_t steps = a.trainer.steps_per_epoch();
    ASSERT_EQ(steps, 4);
    for (std::int64_t index = 0; index < steps; ++index) {
      const SpinStepMetrics ma = a.trainer.step(0, 0, index, 1e-2);
      EXPECT_EQ(ma.spin.loss, b.trainer.step(0, 0, index, 1e-2).spin.loss);
      EXPECT_EQ(ma.spin.loss, c.trainer.step(0, 0, index, 1e-2).spin.loss) << "the first epoch: the same noise";
      d.trainer.step(0, 0, index, 1e-2);
    }
    // A trainer given the cache a checkpoint saved (restore_reuse_cache) generates only the 2.
    const std::vector<float> saved = a.trainer.reuse_cache();
    ASSERT_FALSE(saved.empty());
    SpinTrainer restored(d.grid, d.transformer, d.policy, d.grads, d.reference, d.optimizer, d.examples, config);
    EXPECT_FALSE(restored.restore_reuse_cache(saved, 1)) << "another iteration's";
    ASSERT_TRUE(restored.restore_reuse_cache(saved, 0));
    ASSERT_TRUE(restored.restore_ref_logprobs_cache(d.trainer.ref_logprobs_cache(), 0));
    std::vector<float> bad = saved;
    bad.pop_back();
    EXPECT_THROW(restored.restore_reuse_cache(bad, 0), Error) << "a truncated cache";
    const std::int64_t epoch = steps * config.global_batch;
    EXPECT_EQ(a.trainer.responses_generated(), epoch);
    SpinTrainer restarted(b.grid, b.transformer, b.policy, b.grads, b.reference, b.optimizer, b.examples, config);
    // The reference sums, kept by spin.cache_ref_logprobs, come with a checkpoint too.
    ASSERT_TRUE(restarted.restore_ref_logprobs_cache(b.trainer.ref_logprobs_cache(), 0));
    for (std::int64_t index = 0; index < steps; ++index) {
      const SpinStepMetrics ma = a.trainer.step(0, 1, index, 1e-2);
      const SpinStepMetrics mb = restarted.step(0, 1, index, 1e-2);
      EXPECT_EQ(ma.spin.loss, mb.spin.loss);
      EXPECT_EQ(ma.spin.rewards_generated, mb.spin.rewards_generated);
      EXPECT_EQ(ma.grad_norm, mb.grad_norm);
      const SpinStepMetrics md = restored.step(0, 1, index, 1e-2);
      EXPECT_EQ(ma.spin.loss, md.spin.loss);
      EXPECT_EQ(ma.grad_norm, md.grad_norm);
      const SpinStepMetrics mc = c.trainer.step(0, 1, index, 1e-2);
      if (index == 0) {
        EXPECT_NE(ma.spin.rewards_generated, mc.spin.rewards_generated) << "new responses without reuse";
      }
    }
    EXPECT_EQ(a.trainer.responses_generated(), 18) << "in the second epoch only the 2 the first left out";
    EXPECT_EQ(restarted.responses_generated(), 18) << "the first epoch replayed once, and those 2";
    EXPECT_EQ(restored.responses_generated(), 2) << "only the 2 left out: the rest came with the cache";
    EXPECT_EQ(c.trainer.responses_generated(), 2 * epoch);
    EXPECT_EQ(to_host<float>(a.policy.flat()), to_host<float>(b.policy.flat()));
    // The next iteration's reference generates afresh.
    a.trainer.sync_reference();
    a.trainer.step(1, 0, 0, 1e-2);
    EXPECT_EQ(a.trainer.responses_generated(), 18 + config.global_batch);
  }
}

// spin.cache_ref_logprobs: the reference is frozen for the iteration, so each sample's sums are
// forwarded once and kept -- the ground truth's always, the generated response's when it is fixed
// for the iteration (reuse_generations; generations_from_data likewise) -- and the run is the one
// that forwards everything every epoch, up to rounding (a sum forwarded in another packing may
// round differently: bitwise on an AVX2 machine; on an AVX-512 one, whose OpenBLAS picks its
// sgemm kernel by the product's size, 1.1e-6 relative in the gradient norm: bounds 1e-5). A trainer given the kept sums
// a checkpoint saved forwards only what they lack and continues bitwise; the next iteration's
// reference starts afresh.
TEST(SpinTrainer, ReferenceSumsAreForwardedOnceAnIteration) {
  struct Case {
    const char* name;
    bool reuse, sampler, offload;
    std::int64_t second_epoch;  // sequences the second epoch forwards
  };
  // 18 examples, 4 steps of 4 an epoch: the first epoch forwards 16 pairs, the second meets the
  // 2 others (a real half to forward each, and a generated half unless it comes from the sampler).
  for (const Case& c : {Case{"fixed responses", true, false, false, 4}, Case{"fixed, offloaded", true, false, true, 4},
                        Case{"fresh responses", false, false, false, 16 + 2},
                        Case{"fresh, from the sampler", false, true, false, 2},
                        Case{"fixed, from the sampler", true, true, false, 2}}) {
    SCOPED_TRACE(c.name);
    SpinConfig config = testing::small_spin_config();
    config.epochs = 2;
    config.reuse_generations = c.reuse;
    config.ref_logprobs_from_sampler = c.sampler;
    config.ref_offload = c.offload;
    SpinConfig uncached = config;
    uncached.cache_ref_logprobs = false;
    parallel::SelfCommunicator world_a, world_b, world_c;
    testing::SpinSetup a(world_a, {1, 1, 1}, config, 2, false, 18), b(world_b, {1, 1, 1}, uncached, 2, false, 18);
    testing::SpinSetup d(world_c, {1, 1, 1}, config, 2, false, 18);
    const std::int64_t pairs_forwarded = c.sampler ? 1 : 2;
    for (std::int64_t index = 0; index < 4; ++index) {
      const SpinStepMetrics ma = a.trainer.step(0, 0, index, 1e-2);
      EXPECT_EQ(ma.spin.loss, b.trainer.step(0, 0, index, 1e-2).spin.loss);
      d.trainer.step(0, 0, index, 1e-2);
    }
    EXPECT_EQ(a.trainer.reference_sequences_scored(), 16 * pairs_forwarded);
    const std::vector<float> saved = a.trainer.ref_logprobs_cache();
    ASSERT_EQ(saved.size(), 3u + 2u * 18u);
    SpinTrainer restored(d.grid, d.transformer, d.policy, d.grads, d.reference, d.optimizer, d.examples, config);
    EXPECT_FALSE(restored.restore_ref_logprobs_cache(saved, 1)) << "another iteration's";
    EXPECT_THROW(restored.restore_ref_logprobs_cache(std::span(saved).first(saved.size() - 1), 0), Error)
        << "a truncated cache";
    ASSERT_TRUE(restored.restore_ref_logprobs_cache(saved, 0));
    if (c.reuse) {
      ASSERT_TRUE(restored.restore_reuse_cache(a.trainer.reuse_cache(), 0));
    }
    for (std::int64_t index = 0; index < 4; ++index) {
      const SpinStepMetrics ma = a.trainer.step(0, 1, index, 1e-2);
      const SpinStepMetrics mb = b.trainer.step(0, 1, index, 1e-2);
      const SpinStepMetrics md = restored.step(0, 1, index, 1e-2);
      EXPECT_NEAR(ma.spin.loss, mb.spin.loss, 1e-5) << "kept sums = sums forwarded again";
      EXPECT_NEAR(ma.spin.rewards_actual, mb.spin.rewards_actual, 1e-5);
      EXPECT_NEAR(ma.spin.rewards_generated, mb.spin.rewards_generated, 1e-5);
      EXPECT_NEAR(ma.grad_norm, mb.grad_norm, 1e-5 * ma.grad_norm);
      EXPECT_EQ(ma.spin.loss, md.spin.loss);
      EXPECT_EQ(ma.grad_norm, md.grad_norm);
    }
    EXPECT_EQ(a.trainer.reference_sequences_scored(), 16 * pairs_forwarded + c.second_epoch);
    EXPECT_EQ(restored.reference_sequences_scored(), c.second_epoch) << "the kept sums came with the checkpoint";
    EXPECT_EQ(b.trainer.reference_sequences_scored(), 2 * 16 * pairs_forwarded);
    if (c.offload) {
      // Uploaded for every first-epoch step; in the second only for its first step (which
      // generates the 2 samples the first epoch left out) and the steps that meet those 2 (their
      // sums); never for a step without reference work.
      std::set<std::int64_t> seen;
      for (std::int64_t index = 0; index < 4; ++index) {
        for (const auto& g : a.trainer.plan().micro_batches(0, index, 0)) seen.insert(g.begin(), g.end());
      }
      std::int64_t meeting = 1;
      for (std::int64_t index = 1; index < 4; ++index) {
        bool meets = false;
        for (const auto& g : a.trainer.plan().micro_batches(1, index, 0)) {
          for (std::int64_t i : g) meets = meets || !seen.contains(i);
        }
        meeting += meets ? 1 : 0;
      }
      EXPECT_EQ(a.trainer.reference_uploads(), 4 + meeting);
      EXPECT_EQ(b.trainer.reference_uploads(), 4 + 4);
    } else {
      EXPECT_EQ(a.trainer.reference_uploads(), 0);
    }
    EXPECT_EQ(to_host<float>(a.policy.flat()), to_host<float>(d.policy.flat()));
    // The next iteration's reference forwards everything again.
    a.trainer.sync_reference();
    EXPECT_TRUE(a.trainer.ref_logprobs_cache().empty());
    a.trainer.step(1, 0, 0, 1e-2);
    EXPECT_EQ(a.trainer.reference_sequences_scored(), 16 * pairs_forwarded + c.second_epoch + 4 * pairs_forwarded);
  }
  // Off, or one epoch an iteration (each sample met once): nothing kept, nothing saved.
  SpinConfig off = testing::small_spin_config(), one_epoch = testing::small_spin_config();
  off.epochs = 2;
  off.cache_ref_logprobs = false;
  ASSERT_EQ(one_epoch.epochs, 1);
  for (const SpinConfig& config : {off, one_epoch}) {
    parallel::SelfCommunicator world;
    testing::SpinSetup s(world, {1, 1, 1}, config);
    s.trainer.step(0, 0, 0, 1e-2);
    EXPECT_TRUE(s.trainer.ref_logprobs_cache().empty());
    EXPECT_FALSE(s.trainer.restore_ref_logprobs_cache(std::vector<float>(3 + 2 * 16, 0.0f), 0));
  }
}

// spin.pregenerate: the first epoch's responses all generated when its first step starts, in
// one continuous batch, keyed by sample as always -- the same responses and run as generating
// step by step; a trainer restarted inside the first epoch generates them the same way again
// and continues bitwise. Their reference sums are forwarded right after, so under ref_offload
// the reference is uploaded once for the whole epoch. Progress is reported for the long call;
// without reuse it is refused.
TEST(SpinTrainer, PregeneratedResponsesAreThoseOfStepByStepGeneration) {
  SpinConfig stepwise = testing::small_spin_config();
  stepwise.epochs = 2;
  stepwise.reuse_generations = true;
  SpinConfig ahead = stepwise;
  ahead.pregenerate = true;
  SpinConfig offloaded = ahead;
  offloaded.ref_offload = true;
  parallel::SelfCommunicator world_a, world_b, world_c, world_d;
  testing::SpinSetup a(world_a, {1, 1, 1}, stepwise, 2, false, 18), b(world_b, {1, 1, 1}, ahead, 2, false, 18);
  testing::SpinSetup c(world_c, {1, 1, 1}, ahead, 2, false, 18), d(world_d, {1, 1, 1}, offloaded, 2, false, 18);
  std::vector<std::pair<std::int64_t, std::int64_t>> progress;
  b.trainer.set_generation_progress([&](std::int64_t done, std::int64_t total) { progress.emplace_back(done, total); });
  std::optional<SpinTrainer> restarted;
  for (std::int64_t epoch = 0; epoch < 2; ++epoch) {
    for (std::int64_t index = 0; index < 4; ++index) {
      const SpinStepMetrics ma = a.trainer.step(0, epoch, index, 1e-2);
      const SpinStepMetrics mb = b.trainer.step(0, epoch, index, 1e-2);
      if (epoch == 0 && index == 0) {
        EXPECT_EQ(a.trainer.responses_generated(), 4);
        EXPECT_EQ(b.trainer.responses_generated(), 16) << "the whole first epoch at its first step";
        ASSERT_FALSE(progress.empty());
        EXPECT_EQ(progress.back(), std::make_pair(std::int64_t{16}, std::int64_t{16}));
      }
      EXPECT_EQ(ma.spin.generated_length_mean, mb.spin.generated_length_mean) << epoch << " " << index;
      EXPECT_NEAR(ma.spin.loss, mb.spin.loss, 1e-6) << epoch << " " << index;
      // c: the same run, its process restarted before the first epoch's third step.
      if (epoch == 0 && index == 2) {
        restarted.emplace(c.grid, c.transformer, c.policy, c.grads, c.reference, c.optimizer, c.examples, ahead);
        ASSERT_TRUE(restarted->restore_ref_logprobs_cache(c.trainer.ref_logprobs_cache(), 0));
      }
      SpinTrainer& tc = restarted ? *restarted : c.trainer;
      const SpinStepMetrics mc = tc.step(0, epoch, index, 1e-2);
      EXPECT_EQ(mb.spin.loss, mc.spin.loss) << epoch << " " << index;
      EXPECT_EQ(mb.grad_norm, mc.grad_norm) << epoch << " " << index;
      EXPECT_EQ(mb.spin.loss, d.trainer.step(0, epoch, index, 1e-2).spin.loss) << "offloaded";
      if (epoch == 0 && index == 0) {
        EXPECT_EQ(b.trainer.reference_sequences_scored(), 2 * 16) << "every pair of the epoch, now";
      }
    }
    if (epoch == 0) {
      EXPECT_EQ(d.trainer.reference_uploads(), 1) << "the whole first epoch's reference work at its first step";
      EXPECT_EQ(b.trainer.reference_sequences_scored(), 2 * 16);
    }
  }
  EXPECT_EQ(b.trainer.responses_generated(), 18) << "and the 2 the first epoch left out, in the second";
  EXPECT_EQ(restarted->responses_generated(), 18) << "the first epoch again at once, then the 2";
  EXPECT_EQ(to_host<float>(b.policy.flat()), to_host<float>(c.policy.flat()));
  SpinConfig refused = ahead;
  refused.reuse_generations = false;
  EXPECT_THROW(refused.validate(), Error);
}

TEST(SpinTrainer, SamplerLogprobsAgreeWithTheReferenceForward) {
  parallel::SelfCommunicator world;
  SpinConfig config = testing::small_spin_config();
  config.ref_logprobs_from_sampler = true;
  testing::SpinSetup s(world, {1, 1, 1}, config);
  const SpinStepMetrics first = s.trainer.step(0, 0, 0, 1e-2);
  // policy == reference: the rewards are 0 up to the KV-cache path's rounding -- and the real
  // half's to the rounding of another packing (the reference forwards the real halves alone, the
  // policy them beside the generated ones): bitwise on an AVX2 machine, 2.4e-7 on an AVX-512 one
  // (OpenBLAS's sgemm kernel chosen by the product's size).
  EXPECT_NEAR(first.spin.rewards_actual, 0.0, 1e-6) << "the real half is a forward in both";
  EXPECT_NEAR(first.spin.rewards_generated, 0.0, 1e-5);
  EXPECT_NEAR(first.spin.loss, std::log(2.0), 1e-5);
}

TEST(SpinConfig, LambdaListsMustCoverTheIterations) {
  SpinConfig c = testing::small_spin_config();
  c.iterations = 3;
  EXPECT_THROW(c.validate(), spin::Error);
  c.kl_penalty = {0.1};
  EXPECT_NO_THROW(c.validate());
  EXPECT_EQ(c.lambda(2), 0.1);
}

}  // namespace
}  // namespace spin::train
