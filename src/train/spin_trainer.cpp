#include "train/spin_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <tuple>
#include <utility>

#include "core/error.h"
#include "core/profile.h"
#include "model/flops.h"
#include "train/pipeline_scorer.h"

namespace spin::train {

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Noise streams for evaluation rollouts: far from the training ones (iteration x epoch).
constexpr std::uint64_t kEvaluationStream = std::uint64_t{1} << 40;

}  // namespace

double SpinConfig::lambda(std::int64_t iteration) const {
  return kl_penalty.size() == 1 ? kl_penalty[0] : kl_penalty.at(static_cast<std::size_t>(iteration));
}

void SpinConfig::validate() const {
  require(iterations >= 1 && epochs >= 1, "SPIN: iterations (", iterations, ") and epochs (",
          epochs, ") must be at least 1");
  require(!kl_penalty.empty(), "SPIN: kl_penalty needs a value");
  require(kl_penalty.size() == 1 || static_cast<std::int64_t>(kl_penalty.size()) >= iterations,
          "SPIN: kl_penalty lists ", kl_penalty.size(), " values for ", iterations,
          " iterations; give one value or one per iteration");
  for (double l : kl_penalty) {
    // An infinite lambda makes the first step's margin inf x 0 (the policy starts as its reference): NaN.
    require(l > 0.0 && std::isfinite(l), "SPIN: kl_penalty values must be finite and > 0, got ", l);
  }
  objective.validate();
  require(rollout_batch >= 1, "SPIN: rollout batch size must be at least 1");
  require(micro_batch_tokens >= 0, "SPIN: spin.micro_batch_tokens must be >= 0 (0: micro-batches of micro_batch_size "
          "pairs), got ", micro_batch_tokens);
  require(!pregenerate || reuse_generations,
          "SPIN: spin.pregenerate generates an iteration's responses once, ahead of its steps: it needs "
          "spin.reuse_generations = true");
  require(!(generations_from_data && ref_logprobs_from_sampler),
          "SPIN: spin.ref_logprobs = sampler needs the reference's own samples; with spin.generations = data the "
          "reference scores the given responses by a forward (spin.ref_logprobs = forward)");
  require(max_steps >= 0, "SPIN: max_steps must not be negative");
  require(!mix_previous_iteration || reuse_generations,
          "SPIN: spin.mix_previous_iteration trains on the previous iteration's responses, which only "
          "spin.reuse_generations = true keeps (one response per prompt and iteration)");
  require(!(mix_previous_iteration && generations_from_data),
          "SPIN: spin.mix_previous_iteration mixes the reference's responses of two iterations; with "
          "spin.generations = data list both iterations' files in data.train instead");
  require(!(mix_previous_iteration && ref_logprobs_from_sampler),
          "SPIN: spin.mix_previous_iteration needs spin.ref_logprobs = forward: the previous iteration's "
          "responses were sampled by another reference, whose sums the current one cannot reuse");
}

std::int64_t samples_in_iteration(const SpinConfig& config, std::int64_t examples, std::int64_t iteration) {
  return (config.mix_previous_iteration && iteration > 0 ? 2 : 1) * examples;
}

RunShape spin_run_shape(const SpinConfig& config, std::int64_t examples, int dp) {
  std::vector<std::int64_t> per_epoch;
  for (std::int64_t k = 0; k < config.iterations; ++k) {
    per_epoch.push_back(data::BatchPlan(samples_in_iteration(config, examples, k), config.global_batch,
                                        config.micro_batch, dp, config.seed, config.shuffle)
                            .batches_per_epoch());
  }
  return RunShape(config.epochs, std::move(per_epoch));
}

SpinTrainer::SpinTrainer(const parallel::ProcessGrid& grid, model::TransformerChunks chunks,
                         model::ModelWeights& policy, model::ModelWeights& grads, model::ModelWeights& reference,
                         Optimizer& optimizer, const std::vector<data::Example>& examples, const SpinConfig& config,
                         model::ModelWeights* adapters)
    : grid_(grid),
      chunks_(std::move(chunks)),
      policy_(policy),
      grads_(grads),
      reference_(reference),
      reference_at_work_(config.ref_offload ? policy : reference),
      adapters_(adapters),
      examples_(examples),
      config_(config),
      plan_(static_cast<std::int64_t>(examples.size()), config.global_batch, config.micro_batch, grid.dp_size(),
            config.seed, config.shuffle),
      trainer_(grid, chunks_, policy, grads, optimizer, adapters),
      reference_generator_(grid, chunks_, reference_at_work_) {
  config_.validate();
  trainer_.set_overlap_p2p_comm(config_.overlap_p2p_comm);
  if (config_.mix_previous_iteration && config_.iterations > 1) {
    mixed_plan_.emplace(samples(1), config.global_batch, config.micro_batch, grid.dp_size(), config.seed,
                        config.shuffle);
  }
  const model::ModelWeights& trained = adapters ? *adapters : policy;
  require(grads.flat().numel() == trained.flat().numel() && reference.layout_numel() == policy.layout_numel(),
          "SPIN: the policy, its gradients and the reference differ in layout");
  require(!adapters || (&policy == &reference && !config.ref_offload),
          "SPIN with LoRA adapters: the policy is the reference's weights + the adapters (no second copy, nothing "
          "to offload)");
}

std::uint64_t SpinTrainer::adapter_seed(std::uint64_t seed, std::int64_t iteration) {
  return seed + 0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(iteration + 1);
}

const data::BatchPlan& SpinTrainer::plan(std::int64_t iteration) const {
  return mixes(iteration) && mixed_plan_ ? *mixed_plan_ : plan_;
}

std::int64_t SpinTrainer::samples(std::int64_t iteration) const {
  return samples_in_iteration(config_, static_cast<std::int64_t>(examples_.size()), iteration);
}

std::size_t SpinTrainer::ref_slot(std::int64_t sample, int half) const {
  const auto n = static_cast<std::int64_t>(examples_.size());
  return 2 * static_cast<std::size_t>(half == 0 ? sample % n : sample) + static_cast<std::size_t>(half);
}

void SpinTrainer::use_reference() {
  if (!config_.ref_offload || reference_swapped_in_) return;
  grads_.flat().copy_from(policy_.flat());  // park the policy (device to device)
  if (reference_.frozen()) {
    policy_.borrow_forward_values(reference_);  // the reference's bf16 values, from host memory
  } else {
    policy_.flat().copy_from(reference_.flat());  // the reference, from host memory
    policy_.refresh_bf16(chunks_.front()->kernels());
  }
  reference_swapped_in_ = true;
  ++reference_uploads_;
}

void SpinTrainer::release_reference() {
  if (!reference_swapped_in_) return;
  // The gradient buffer holds nothing else between steps (PipelineTrainer::step zeroes it).
  policy_.flat().copy_from(grads_.flat());
  policy_.refresh_bf16(chunks_.front()->kernels());
  reference_swapped_in_ = false;
}

class SpinTrainer::ReleaseReference {
 public:
  explicit ReleaseReference(SpinTrainer& t) : t_(t) {}
  ~ReleaseReference() { t_.release_reference(); }
  ReleaseReference(const ReleaseReference&) = delete;
  ReleaseReference& operator=(const ReleaseReference&) = delete;

 private:
  SpinTrainer& t_;
};

std::vector<SpinTrainer::Response> SpinTrainer::generate(const std::vector<std::int64_t>& indices,
                                                         const std::vector<data::Example>& examples,
                                                         std::uint64_t stream) {
  if (config_.generations_from_data) {
    std::vector<Response> given;
    for (std::int64_t idx : indices) {
      const data::Example& e = examples[static_cast<std::size_t>(idx)];
      require(!e.generated.empty(), "SPIN: the example of line ", e.line,
              " has no generated response (spin.generations = data)");
      given.push_back({e.generated, 0.0f, false});
    }
    return given;
  }
  use_reference();
  const auto n = static_cast<std::uint64_t>(examples.size());
  std::vector<std::vector<std::int32_t>> prompts;
  std::vector<std::uint64_t> ids;
  for (std::int64_t idx : indices) {
    prompts.push_back(examples[static_cast<std::size_t>(idx)].prompt);
    ids.push_back(stream * n + static_cast<std::uint64_t>(idx));
  }
  // Continuous batching: rollout_batch sequences in flight, a finished one's slot refilled;
  // prompts prefilled in chunks under rollout_step_tokens.
  generate::Batching batching{config_.rollout_batch, config_.rollout_step_tokens, {}};
  if (progress_ && &examples == &examples_) {
    const auto total = static_cast<std::int64_t>(prompts.size());
    batching.on_finished = [this, total](std::int64_t finished) { progress_(finished, total); };
  }
  std::vector<Response> out;
  for (auto& g : reference_generator_.generate(prompts, ids, config_.generation, batching)) {
    if (&examples == &examples_) tokens_generated_ += static_cast<std::int64_t>(g.tokens.size());
    const float sum = std::accumulate(g.logprobs.begin(), g.logprobs.end(), 0.0f);
    out.push_back({std::move(g.tokens), sum, g.finish == generate::FinishReason::Length});
  }
  return out;
}

SpinTrainer::Rollout SpinTrainer::pairs(const std::vector<std::vector<std::int64_t>>& groups,
                                        const std::vector<data::Example>& examples,
                                        const std::vector<const Response*>& responses, std::int64_t groups_of) const {
  Rollout r;
  // The groups' pairs in order -- groups of micro_batch, the plan's or evaluate()'s -- each with its
  // tokens (its real and generated sequences), cut again: the same groups, or by tokens as well.
  std::vector<std::int64_t> samples, tokens;
  for (const auto& g : groups) {
    for (std::int64_t idx : g) {
      const data::Example& ex = examples[static_cast<std::size_t>(idx) % examples.size()];
      tokens.push_back(static_cast<std::int64_t>(2 * ex.prompt.size() + ex.response.size() +
                                                 responses[samples.size()]->tokens.size()));
      samples.push_back(idx);
    }
  }
  std::size_t at = 0;
  for (const auto& g :
       data::cut_micro_batches(samples, tokens, config_.micro_batch, config_.micro_batch_tokens, groups_of)) {
    std::vector<model::Sequence> seqs;
    std::vector<float> sampler;
    r.samples.emplace_back();
    for (std::int64_t idx : g) {
      // Sample idx is example idx modulo the examples (mix_previous_iteration's second half).
      const data::Example& ex = examples[static_cast<std::size_t>(idx) % examples.size()];
      const Response& gen = *responses[at++];
      const auto prompt_len = static_cast<std::int64_t>(ex.prompt.size());
      std::vector<std::int32_t> real = ex.prompt, fake = ex.prompt;
      real.insert(real.end(), ex.response.begin(), ex.response.end());
      fake.insert(fake.end(), gen.tokens.begin(), gen.tokens.end());
      // Keys for dropout masks: the sample's real and generated halves.
      seqs.push_back({std::move(real), prompt_len, 0, 2 * idx});
      seqs.push_back({std::move(fake), prompt_len, 0, 2 * idx + 1});
      sampler.push_back(gen.logprob_sum);
      r.samples.back().push_back(idx);
      r.lengths.push_back(static_cast<std::int64_t>(gen.tokens.size()));
      if (gen.capped) ++r.capped;
    }
    r.micro_batches.push_back(model::TokenBatch::pack(seqs));
    r.sequences.push_back(std::move(seqs));
    r.sampler_sums.push_back(std::move(sampler));
  }
  return r;
}

SpinTrainer::Rollout SpinTrainer::rollout(const std::vector<std::vector<std::int64_t>>& groups,
                                          const std::vector<data::Example>& examples, std::uint64_t stream,
                                          std::int64_t groups_of) {
  std::vector<std::int64_t> indices;
  for (const auto& g : groups) indices.insert(indices.end(), g.begin(), g.end());
  const std::vector<Response> generated = generate(indices, examples, stream);
  std::vector<const Response*> responses;
  for (const Response& r : generated) responses.push_back(&r);
  return pairs(groups, examples, responses, groups_of);
}

bool SpinTrainer::keeps_ref_sum(int half) const {
  // An iteration of one epoch meets each sample once: nothing to keep -- unless the sums are
  // computed ahead with the pregenerated responses.
  return config_.cache_ref_logprobs && (config_.epochs > 1 || config_.pregenerate) &&
         (half == 0 || config_.reuse_generations || config_.generations_from_data) &&
         !(half == 1 && config_.ref_logprobs_from_sampler);  // the sampler's sums are no forward's
}

std::vector<std::vector<float>> SpinTrainer::reference_sums(const Rollout& r, std::int64_t iteration) {
  const bool keeping = iteration >= 0 && keeps_ref_sum(0);
  if (keeping && ref_sums_iteration_ != iteration) {
    ref_sums_.assign(2 * static_cast<std::size_t>(samples(iteration)), std::numeric_limits<float>::quiet_NaN());
    ref_sums_iteration_ = iteration;
  }
  // Sequence s of a micro-batch is half s % 2 (0 real, 1 generated) of pair s / 2. Its sum
  // comes from the sampler, from the kept sums, or from a forward -- the same choice on every
  // rank of the replica (they hold the same kept sums), so they score the same batches.
  const auto known = [&](std::size_t mb, std::size_t s) -> const float* {
    const int half = static_cast<int>(s % 2);
    if (half == 1 && config_.ref_logprobs_from_sampler) return &r.sampler_sums[mb][s / 2];
    if (!keeping || !keeps_ref_sum(half)) return nullptr;
    const float* kept = &ref_sums_[ref_slot(r.samples[mb][s / 2], half)];
    return std::isnan(*kept) ? nullptr : kept;
  };
  std::vector<model::TokenBatch> batches;
  std::vector<std::vector<std::size_t>> forwarded(r.micro_batches.size());  // per micro-batch
  for (std::size_t mb = 0; mb < r.micro_batches.size(); ++mb) {
    std::vector<model::Sequence> seqs;
    for (std::size_t s = 0; s < r.sequences[mb].size(); ++s) {
      if (known(mb, s) != nullptr) continue;
      forwarded[mb].push_back(s);
      seqs.push_back(r.sequences[mb][s]);
    }
    if (!seqs.empty()) batches.push_back(model::TokenBatch::pack(seqs));
  }
  std::vector<std::vector<float>> scored;
  if (!batches.empty()) {
    use_reference();
    scored = score_pipelined(grid_, chunks_, reference_at_work_, batches);
    if (iteration >= 0) {
      for (const model::TokenBatch& b : batches) reference_scored_ += b.num_seqs();
    }
  }
  std::vector<std::vector<float>> sums(r.micro_batches.size());
  if (last_stage()) {
    std::size_t next = 0;
    for (std::size_t mb = 0; mb < sums.size(); ++mb) {
      const std::vector<float>* forward = forwarded[mb].empty() ? nullptr : &scored[next++];
      std::size_t k = 0;
      for (std::size_t s = 0; s < r.sequences[mb].size(); ++s) {
        const bool was_forwarded = k < forwarded[mb].size() && forwarded[mb][k] == s;
        sums[mb].push_back(was_forwarded ? (*forward)[k++] : *known(mb, s));
      }
    }
  }
  if (keeping) share_ref_sums(r, sums);
  return sums;
}

void SpinTrainer::share_ref_sums(const Rollout& r, const std::vector<std::vector<float>>& sums) {
  // Anything new to keep on any replica? (Every rank must take part in the exchange, or none.)
  double fresh = 0.0;
  for (std::size_t mb = 0; mb < r.samples.size(); ++mb) {
    for (std::size_t i = 0; i < r.samples[mb].size(); ++i) {
      for (int half = 0; half < 2; ++half) {
        if (keeps_ref_sum(half) && std::isnan(ref_sums_[ref_slot(r.samples[mb][i], half)])) fresh = 1.0;
      }
    }
  }
  grid_.dp().all_reduce(&fresh, 1, parallel::ReduceOp::Max);
  if (fresh == 0.0) return;
  // Per pair of this replica: its sample and the two sums (NaN for a half not kept), from the
  // last stage to the replica's other stages, then over DP.
  const double none = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> mine;
  for (std::size_t mb = 0; mb < r.samples.size(); ++mb) {
    for (std::size_t i = 0; i < r.samples[mb].size(); ++i) {
      mine.push_back(static_cast<double>(r.samples[mb][i]));
      for (std::size_t half = 0; half < 2; ++half) {
        const bool kept = keeps_ref_sum(static_cast<int>(half)) && last_stage();
        mine.push_back(kept ? static_cast<double>(sums[mb][2 * i + half]) : none);
      }
    }
  }
  if (grid_.pp_size() > 1) grid_.pp().broadcast(mine.data(), mine.size(), grid_.pp_size() - 1);
  for (const std::vector<double>& block : parallel::all_gather_varying(grid_.dp(), std::move(mine))) {
    for (std::size_t at = 0; at + 3 <= block.size(); at += 3) {
      const auto sample = static_cast<std::int64_t>(block[at]);
      for (int half = 0; half < 2; ++half) {
        const double sum = block[at + 1 + static_cast<std::size_t>(half)];
        if (!std::isnan(sum)) ref_sums_[ref_slot(sample, half)] = static_cast<float>(sum);
      }
    }
  }
}

std::vector<std::vector<std::int64_t>> SpinTrainer::response_tokens(const Rollout& r) {
  std::vector<std::vector<std::int64_t>> tokens;
  for (const auto& seqs : r.sequences) {
    tokens.emplace_back();
    for (const model::Sequence& s : seqs) tokens.back().push_back(static_cast<std::int64_t>(s.tokens.size()) - s.mask_from);
  }
  return tokens;
}

SpinMetrics SpinTrainer::reduce(const SpinTotals& t, const Rollout& r, double sft_nll_sum,
                                double sft_tokens) const {
  const bool last = last_stage();
  // Loss terms live on the last stage; generation statistics on every stage of a replica,
  // counted there once.
  const double length_sum = std::accumulate(r.lengths.begin(), r.lengths.end(), 0.0);
  std::vector<double> sums = {t.loss, t.rewards_actual, t.rewards_generated, t.correct, t.pairs,
                              length_sum, static_cast<double>(r.lengths.size()),
                              static_cast<double>(r.capped), sft_nll_sum, sft_tokens,
                              t.logps_actual, t.logps_generated};
  if (!last) std::fill(sums.begin(), sums.end(), 0.0);
  grid_.pp().all_reduce(sums.data(), sums.size());
  grid_.dp().all_reduce(sums.data(), sums.size());
  double longest = r.lengths.empty() ? 0.0 : static_cast<double>(*std::max_element(r.lengths.begin(), r.lengths.end()));
  grid_.dp().all_reduce(&longest, 1, parallel::ReduceOp::Max);
  SpinMetrics m;
  const double pairs = std::max(sums[4], 1.0);
  m.loss = sums[0] / pairs;
  m.rewards_actual = sums[1] / pairs;
  m.rewards_generated = sums[2] / pairs;
  m.margin = m.rewards_actual - m.rewards_generated;
  m.accuracy = sums[3] / pairs;
  m.generated_length_mean = sums[5] / std::max(sums[6], 1.0);
  m.generated_length_max = longest;
  m.length_capped = sums[7] / std::max(sums[6], 1.0);
  m.sft_nll = sums[9] > 0 ? sums[8] / sums[9] : 0.0;
  m.logps_actual = sums[10] / pairs;
  m.logps_generated = sums[11] / pairs;
  return m;
}

SpinStepMetrics SpinTrainer::step(std::int64_t iteration, std::int64_t epoch, std::int64_t index,
                                  double lr) {
  last_iteration_ = iteration;
  const std::int64_t global_epoch = iteration * config_.epochs + epoch;
  const auto groups = plan(iteration).micro_batches(global_epoch, index, grid_.dp_rank());
  require(!mixes(iteration) || previous_iteration_ == iteration - 1, "SPIN: iteration ", iteration + 1,
          " trains on iteration ", iteration, "'s responses too (spin.mix_previous_iteration), which this run does "
          "not hold");
  SpinStepMetrics out;

  auto t = Clock::now();
  const std::int64_t tokens_before = tokens_generated_;
  ReleaseReference release(*this);  // used by generation and scoring as they need it
  Rollout r;
  std::optional<profile::Range> range(std::in_place, "generation");
  if (config_.reuse_generations) {
    fill_cache(iteration, epoch, index);
    r = cached_pairs(groups);
  } else {
    r = rollout(groups, examples_, static_cast<std::uint64_t>(global_epoch), training_groups());
    if (!config_.generations_from_data) responses_generated_ += static_cast<std::int64_t>(r.lengths.size());
  }
  out.seconds_generation = since(t);

  t = Clock::now();
  range.emplace("reference");
  SpinLoss loss(config_.objective, config_.lambda(iteration), config_.global_batch, reference_sums(r, iteration),
                response_tokens(r));
  release_reference();  // the policy back in its buffers
  out.seconds_reference = since(t);

  t = Clock::now();
  range.emplace("policy");
  const std::uint64_t dropout_seed = model::TokenBatch::step_dropout_seed(
      config_.seed, (static_cast<std::uint64_t>(global_epoch) << 32) | static_cast<std::uint64_t>(index));
  for (model::TokenBatch& b : r.micro_batches) b.dropout_seed = dropout_seed;
  const StepMetrics m = trainer_.step(r.micro_batches, loss, lr);
  range.reset();
  out.seconds_training = since(t);
  out.expert_load_max = m.expert_load_max;
  out.expert_load_min = m.expert_load_min;
  out.expert_rank_load_max = m.expert_rank_load_max;
  out.balance_loss = m.balance_loss;
  out.z_loss = m.z_loss;

  out.spin = reduce(loss.totals(), r, 0.0, 0.0);
  out.lr = m.lr;
  out.grad_norm = m.grad_norm;
  out.applied = m.applied;
  out.skipped_total = m.skipped_total;
  std::vector<std::int64_t> lengths;
  for (const auto& seqs : r.sequences) {
    for (const model::Sequence& s : seqs) lengths.push_back(static_cast<std::int64_t>(s.tokens.size()));
  }
  double totals[4] = {0.0, model::training_flops(chunks_.front()->config(), lengths),
                      static_cast<double>(tokens_generated_ - tokens_before),
                      static_cast<double>(r.micro_batches.size())};
  for (const auto& b : r.micro_batches) totals[0] += static_cast<double>(b.rows());
  grid_.dp().all_reduce(totals, 4);
  if (config_.micro_batch_tokens > 0) out.micro_batches = static_cast<std::int64_t>(totals[3]);
  out.tokens_per_second = totals[0] / std::max(out.seconds_training, 1e-9);
  out.generated_tokens = static_cast<std::int64_t>(totals[2]);
  out.generation_tokens_per_second = totals[2] > 0.0 ? totals[2] / std::max(out.seconds_generation, 1e-9) : 0.0;
  out.training_flops = totals[1];
  out.tflops_per_rank = totals[1] / std::max(out.seconds_training, 1e-9) / grid_.world().size() / 1e12;
  return out;
}

SpinMetrics SpinTrainer::evaluate(const std::vector<data::Example>& examples,
                                  std::int64_t iteration) {
  const std::vector<std::vector<std::int64_t>> groups = data::cut_micro_batches(
      data::replica_share(static_cast<std::int64_t>(examples.size()), grid_.dp_rank(), grid_.dp_size()), {},
      config_.micro_batch);
  if (evaluated_.iteration != iteration || evaluated_.examples != &examples || evaluated_.count != examples.size()) {
    ReleaseReference release(*this);
    evaluated_.rollout = rollout(groups, examples, kEvaluationStream + static_cast<std::uint64_t>(iteration), 1);
    evaluated_.reference = reference_sums(evaluated_.rollout, -1);
    evaluated_.iteration = iteration;
    evaluated_.examples = &examples;
    evaluated_.count = examples.size();
    ++evaluation_rollouts_;
  }
  const Rollout& r = evaluated_.rollout;
  const std::vector<std::vector<float>>& ref = evaluated_.reference;
  const auto policy = score_pipelined(grid_, chunks_, policy_, r.micro_batches, adapters_);
  SpinLoss loss(config_.objective, config_.lambda(iteration), std::max<std::int64_t>(1, static_cast<std::int64_t>(examples.size())),
                ref, response_tokens(r));
  double nll = 0.0, tokens = 0.0;
  if (last_stage()) {
    for (std::size_t mb = 0; mb < policy.size(); ++mb) {
      std::vector<float> unused(policy[mb].size());
      loss.micro_batch_loss(static_cast<int>(mb), policy[mb], unused);
      for (std::size_t i = 0; i < policy[mb].size(); i += 2) nll -= policy[mb][i];
    }
  }
  for (const auto& g : groups) {
    for (std::int64_t idx : g) tokens += static_cast<double>(examples[static_cast<std::size_t>(idx)].response.size());
  }
  if (!last_stage()) tokens = 0.0;
  return reduce(loss.totals(), r, nll, tokens);
}

void SpinTrainer::complete_cache() {
  ReleaseReference release(*this);
  fill_cache(cache_iteration_, 1, 0);  // as a later epoch would
}

std::vector<SpinTrainer::IterationResponse> SpinTrainer::iteration_responses() {
  require(config_.reuse_generations && cache_iteration_ >= 0,
          "SPIN: no iteration's responses are kept (they are with spin.reuse_generations, once a step has run)");
  complete_cache();
  std::vector<IterationResponse> out;
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(examples_.size()); ++i) {
    const Response& r = cache_.at(i);
    out.push_back({r.tokens, r.capped});
  }
  return out;
}

void SpinTrainer::sync_reference() {
  previous_.clear();
  previous_iteration_ = -1;
  if (config_.mix_previous_iteration && cache_iteration_ >= 0 && cache_iteration_ + 1 < config_.iterations) {
    // The next iteration trains on every example with this iteration's response too.
    complete_cache();
    previous_ = std::move(cache_);
    previous_iteration_ = cache_iteration_;
  }
  if (adapters_) {
    adapters_->merge_into(reference_, chunks_.front()->kernels());
    adapters_->init_random(adapter_seed(config_.seed, last_iteration_ + 1), 0.0f);
  } else {
    reference_.copy_from(policy_);
  }
  cache_.clear();  // the responses and sums of the reference that was
  cache_iteration_ = -1;
  ref_sums_.clear();
  ref_sums_iteration_ = -1;
  evaluated_ = {};
}

}  // namespace spin::train
