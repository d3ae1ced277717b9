// SpinTrainer: one SPIN step, end to end, on every rank of a TP x PP x DP grid.
//   1. The step's global batch of prompts (data::BatchPlan; each DP rank its contiguous share).
//   2. The REFERENCE weights generate a response to each prompt (generate::Generator), at most
//      rollout_batch sequences in flight per replica (continuous batching); the noise is keyed by (seed, iteration,
//      epoch, sample), so responses do not depend on the layout or the rollout size. With
//      reuse_generations (the SPIN paper's fixed synthetic data of an iteration) each prompt's
//      response is generated once per iteration, in the iteration's first epoch, shared over
//      DP (a later epoch deals the samples to other replicas) and taken from that cache by the
//      later epochs; the samples the first epoch left out (a last partial batch) are generated
//      once when the second epoch starts, in a fixed order. A run resumed past the first epoch
//      refills the cache by replaying those rollouts as they ran (same groups, same noise), so
//      it continues bitwise as the uninterrupted run.
//      With mix_previous_iteration (the SPIN code's training on the data of iterations t and
//      t-1), an iteration after the first visits 2 x examples samples an epoch: sample s < n is
//      example s with this iteration's response, sample n + s example s with the previous
//      iteration's -- which sync_reference() kept, generating first any the iteration left out.
//   3. Pairs [real_i, generated_i] form micro-batches of micro_batch pairs (with
//      micro_batch_tokens, of at most that many tokens too); both sequences are
//      prompt + response with mask_from = prompt length, so f sums exactly the response tokens
//      (the last one and EOS included, no prompt token).
//   4. Reference sums: a forward-only pipeline pass with the reference weights (default), or
//      the generation's own log-probabilities for the generated half (ref_logprobs_from_sampler).
//      The reference is frozen for the iteration, so with cache_ref_logprobs a sample's sums are
//      kept once computed (TRL's precomputed reference log-probabilities, filled as the first
//      epoch goes): the ground truth's always, the generated response's when it is the same
//      all iteration (reuse_generations, generations_from_data). Shared over the grid, so a
//      later epoch -- whichever replica gets the sample -- forwards only what is not kept, and
//      with fixed responses nothing: the reference does no work at all there (nor, with
//      ref_offload, its upload).
//   5. The policy's forward/backward under 1F1B with the SPIN loss, and the optimizer step.
// After the last epoch of an iteration the caller runs sync_reference(): reference <- policy,
// a copy of local shards (policy and reference are sharded identically), no communication.
//
// Reference offload (SpinConfig::ref_offload, NeMo-Aligner's CPU weight swap): the reference's
// float32 values live in host memory, and while the reference works (generation, reference
// scoring) the policy's buffers hold them: the policy's values are parked in the gradient
// buffer -- same layout, and idle between optimizer steps -- the reference is uploaded into the
// policy, and afterwards the policy's values come back (the bf16 copy re-rounded on the device
// each time). No device memory beyond the policy's; per step two device copies and one upload
// of the float32 values.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "data/batch_plan.h"
#include "data/examples.h"
#include "generate/generator.h"
#include "train/lr_schedule.h"
#include "train/pipeline_trainer.h"
#include "train/run_shape.h"
#include "train/spin_loss.h"

#include <optional>
#include <span>
#include <unordered_map>

namespace spin::train {

struct SpinConfig {
  std::vector<double> kl_penalty = {0.1};  // lambda per iteration; one value serves all
  SpinObjective objective;                 // the loss l of each pair's scaled margin
  std::int64_t iterations = 1;
  std::int64_t epochs = 1;       // per iteration
  std::int64_t max_steps = 0;    // caps the run's total (0: no cap)
  std::int64_t global_batch = 8; // prompts (pairs) per optimizer step
  std::int64_t micro_batch = 1;  // pairs per micro-batch
  // With micro_batch_tokens > 0 a micro-batch also holds at most that many tokens (its pairs' real and
  // generated sequences), a longer pair alone (data::cut_micro_batches: NeMo-RL's dynamic batching), cut
  // once the responses are known; micro_batch then caps its pairs.
  std::int64_t micro_batch_tokens = 0;
  std::int64_t rollout_batch = 8;  // sequences generated at once on each DP replica (KV cache slots)
  std::int64_t rollout_step_tokens = 0;  // tokens per generation model call (0: no limit; chunked prefill)
  bool ref_logprobs_from_sampler = false;
  bool ref_offload = false;  // the reference in host memory, swapped in through the policy's buffers
  bool reuse_generations = false;  // one response per prompt and iteration, reused in later epochs
  // With reuse_generations: the first epoch's responses all at once, when its first step starts
  // (one continuous batch per replica instead of one per step: no per-step tail of the longest
  // response), as the SPIN code generates an iteration's data before training on it; with
  // cache_ref_logprobs their reference sums right after, so the reference works (and under
  // ref_offload is uploaded) once per iteration.
  bool pregenerate = false;
  // The generated halves are the examples' own (data::Example::generated, produced offline by
  // another run or model) instead of the reference's samples; the reference still scores them.
  bool generations_from_data = false;
  // With reuse_generations: every iteration after the first trains on its own responses and on
  // the previous iteration's, each example twice an epoch (twice the steps of the first).
  bool mix_previous_iteration = false;
  bool cache_ref_logprobs = true;  // keep each sample's reference sums for the iteration (step 4; epochs > 1)
  bool overlap_p2p_comm = true;    // interleaving: PipelineTrainer::set_overlap_p2p_comm
  generate::GenerationParams generation;
  std::uint64_t seed = 1234;  // data order
  bool shuffle = true;

  double lambda(std::int64_t iteration) const;
  // Throws for a lambda list that does not cover the iterations, and impossible sizes.
  void validate() const;
};

// The samples iteration `iteration` of a run of `config` visits an epoch over `examples`
// examples: the examples, twice after the first iteration with mix_previous_iteration.
std::int64_t samples_in_iteration(const SpinConfig& config, std::int64_t examples, std::int64_t iteration);

// The steps of a SPIN run of `config` over `examples` examples at data-parallel size dp (the
// trainer's plans' batches: spin train's schedule and positions).
RunShape spin_run_shape(const SpinConfig& config, std::int64_t examples, int dp);

struct SpinMetrics {
  double loss = 0.0;
  double rewards_actual = 0.0;     // mean of lambda f(x, y_real)
  double rewards_generated = 0.0;  // mean of lambda f(x, y_gen)
  double margin = 0.0;             // rewards_actual - rewards_generated
  double accuracy = 0.0;           // share of pairs with f(x, y_real) > f(x, y_gen)
  // Means of the policy's log-probability of the whole response, log pi_theta(y | x): both
  // falling while the margin grows is the likelihood displacement DPO-style losses are known for.
  double logps_actual = 0.0;
  double logps_generated = 0.0;
  double generated_length_mean = 0.0;
  double generated_length_max = 0.0;
  double length_capped = 0.0;      // share of responses that hit max_new_tokens
  double sft_nll = 0.0;            // evaluation only: mean NLL per ground-truth response token
};

struct SpinStepMetrics {
  SpinMetrics spin;
  double lr = 0.0;
  double grad_norm = 0.0;
  bool applied = false;
  std::int64_t skipped_total = 0;
  double tokens_per_second = 0.0;   // policy training tokens (real + generated) per second
  // With SpinConfig::micro_batch_tokens, the micro-batches the step's pairs made, all replicas (0 without).
  std::int64_t micro_batches = 0;
  // A mixture of experts (0 for a dense model): over the step's training rows, each layer's busiest
  // expert's rows over its experts' mean, the largest over the layers (1: balanced; experts /
  // experts_per_token: every row to the same experts), and its least busy expert's likewise, the
  // smallest (0: an expert no row reached) -- what the router's load balance, which SPIN does not
  // train for (docs/spin.md), is doing.
  double expert_load_max = 0.0;
  double expert_load_min = 0.0;
  // Under expert parallelism, the busiest expert-parallel group's rows over the groups' mean
  // (StepMetrics::expert_rank_load_max); 0 at ep 1.
  double expert_rank_load_max = 0.0;
  // Its router's load-balancing loss over the step (StepMetrics::balance_loss: experts_per_token
  // where every expert takes its share), trained where ModelConfig::router_aux_loss_coef is not 0.
  double balance_loss = 0.0;
  double z_loss = 0.0;  // and its router z-loss (StepMetrics::z_loss)
  // The model FLOPs of the policy's forward + backward over the step's sequences, all replicas
  // (model/flops.h), and their rate per rank over seconds_training: Megatron's "TFLOP/s per
  // GPU", the training phase's (generation and reference scoring are not in it).
  double training_flops = 0.0;
  double tflops_per_rank = 0.0;
  // Tokens the reference generated in this step, all replicas (none in a step that takes its
  // responses from the iteration's cache), and their rate over seconds_generation (0 without).
  std::int64_t generated_tokens = 0;
  double generation_tokens_per_second = 0.0;
  double seconds_generation = 0.0;
  double seconds_reference = 0.0;
  double seconds_training = 0.0;
};

class SpinTrainer {
 public:
  // With `adapters` (LoRA, model/lora.h) the policy is the reference's weights + the adapters:
  // pass the reference as `policy` too (one model in memory), `grads` and the optimizer of the
  // adapters' layout; sync_reference() then merges the adapters into the reference and starts
  // fresh ones.
  SpinTrainer(const parallel::ProcessGrid& grid, const model::Transformer& transformer, model::ModelWeights& policy,
              model::ModelWeights& grads, model::ModelWeights& reference, Optimizer& optimizer,
              const std::vector<data::Example>& examples, const SpinConfig& config,
              model::ModelWeights* adapters = nullptr)
      : SpinTrainer(grid, model::TransformerChunks{&transformer}, policy, grads, reference, optimizer, examples, config,
                    adapters) {}
  // Interleaved pipeline stages: one Transformer a model chunk of this stage (model::stage_chunks), in
  // model order -- training, scoring and generation go through them all.
  SpinTrainer(const parallel::ProcessGrid& grid, model::TransformerChunks chunks, model::ModelWeights& policy,
              model::ModelWeights& grads, model::ModelWeights& reference, Optimizer& optimizer,
              const std::vector<data::Example>& examples, const SpinConfig& config,
              model::ModelWeights* adapters = nullptr);
  // LoRA: the seed of iteration `iteration`'s fresh adapters (ModelWeights::init_random) in a run
  // of data seed `seed`.
  static std::uint64_t adapter_seed(std::uint64_t seed, std::int64_t iteration);

  // The order of `iteration`'s samples (twice the examples after the first iteration with
  // mix_previous_iteration).
  const data::BatchPlan& plan(std::int64_t iteration = 0) const;
  std::int64_t steps_per_epoch(std::int64_t iteration = 0) const { return plan(iteration).batches_per_epoch(); }

  // One optimizer step on global batch `index` of `epoch` of `iteration` at learning rate lr.
  // Collective over the grid; every rank returns the same metrics.
  SpinStepMetrics step(std::int64_t iteration, std::int64_t epoch, std::int64_t index, double lr);

  // SPIN metrics (with generation by the reference) and the SFT NLL of the ground truth, on
  // `examples` (split over DP ranks), without changing any weight. The reference's part -- its
  // responses (keyed by the iteration: the same at every evaluation of one) and its sums -- is
  // kept for the next evaluation of the same `examples` object in the same iteration, which then
  // runs only the policy (validation every few steps); the examples must not change in between.
  SpinMetrics evaluate(const std::vector<data::Example>& examples, std::int64_t iteration);
  // Called on the first pipeline stage while the reference generates for training, with this
  // replica's finished responses and how many the call has (for a progress line).
  void set_generation_progress(std::function<void(std::int64_t finished, std::int64_t total)> progress) {
    progress_ = std::move(progress);
  }
  // Evaluations that generated (and scored with the reference) rather than reusing the last's.
  std::int64_t evaluation_rollouts() const { return evaluation_rollouts_; }

  // reuse_generations: the current iteration's response to every example, in example order --
  // those its steps left out generated first, by this iteration's reference (collective, as
  // sync_reference()'s completion; call it before). The iteration's synthetic data set, as the
  // SPIN code writes it (spin.save_generations).
  struct IterationResponse {
    std::vector<std::int32_t> tokens;
    bool capped = false;  // stopped by max_new_tokens
  };
  std::vector<IterationResponse> iteration_responses();

  // reference <- policy: a copy of this rank's shards, no communication (LoRA: the adapters
  // merged into the reference, W += scale B A, and fresh ones for the next iteration, keyed by
  // adapter_seed; the caller resets the optimizer's state). With
  // mix_previous_iteration, unless the iteration was the run's last, the iteration's responses
  // are kept for the next -- those its steps left out generated first (collective then).
  void sync_reference();

  // The parts, for memory accounting (spin plan's tests).
  const PipelineTrainer& pipeline() const { return trainer_; }
  const generate::Generator& generator() const { return reference_generator_; }
  // Responses this rank's replica has generated for training steps (evaluation's not counted).
  std::int64_t responses_generated() const { return responses_generated_; }
  // Sequences this rank's replica has scored with the reference for training steps.
  std::int64_t reference_sequences_scored() const { return reference_scored_; }
  // ref_offload: how often the reference went into the policy's buffers (once a step at most).
  std::int64_t reference_uploads() const { return reference_uploads_; }

  // reuse_generations: the cache of the current iteration's responses -- which every rank holds
  // whole -- as floats for a checkpoint, and back, so that a resumed run need not replay the
  // first epoch's generation. Empty when nothing is cached, or when a sample index or token id
  // is 2^24 or more (not exact in a float): the resumed run replays then.
  std::vector<float> reuse_cache() const;
  // Takes a reuse_cache() saved in `iteration` by a run with the same data and batches; returns
  // false, caching nothing, for one of another iteration or shape (the run replays instead).
  bool restore_reuse_cache(std::span<const float> saved, std::int64_t iteration);

  // cache_ref_logprobs: the current iteration's kept reference sums (the same on every rank), as
  // floats for a checkpoint, and back; a resumed run then forwards no sample twice in an
  // iteration. Empty when nothing is kept.
  std::vector<float> ref_logprobs_cache() const;
  // Takes a ref_logprobs_cache() saved in `iteration` with as many examples; returns false,
  // keeping nothing, for one of another iteration or size. Throws for a malformed one.
  bool restore_ref_logprobs_cache(std::span<const float> saved, std::int64_t iteration);

  // mix_previous_iteration: the previous iteration's responses (every example's), kept for the
  // current one, as floats for a checkpoint (reuse_cache()'s layout), and back. Empty when none
  // are kept or one is not exact in a float.
  std::vector<float> previous_responses() const;
  // Takes previous_responses() saved in `iteration` (so of iteration - 1) by a run with the same
  // data; returns false, keeping nothing, for another iteration's or an incomplete set.
  bool restore_previous_responses(std::span<const float> saved, std::int64_t iteration);

 private:
  struct Rollout {
    std::vector<model::TokenBatch> micro_batches;          // [real_0, gen_0, real_1, gen_1, ...]
    std::vector<std::vector<model::Sequence>> sequences;    // per micro-batch, as packed
    std::vector<std::vector<std::int64_t>> samples;         // per micro-batch: each pair's example
    std::vector<std::vector<float>> sampler_sums;          // per micro-batch: generated halves
    std::vector<std::int64_t> lengths;                     // generated lengths
    std::int64_t capped = 0;
  };
  // Per micro-batch, the response tokens each sequence's sum covers (SpinLoss's average_log_probs).
  static std::vector<std::vector<std::int64_t>> response_tokens(const Rollout& r);
  // What a pair needs of a generated response.
  struct Response {
    std::vector<std::int32_t> tokens;
    float logprob_sum = 0.0f;  // under the reference, from the sampler
    bool capped = false;       // stopped by max_new_tokens
  };
  using Responses = std::unordered_map<std::int64_t, Response>;  // by example
  // samples_in_iteration() for this trainer's examples.
  std::int64_t samples(std::int64_t iteration) const;
  bool mixes(std::int64_t iteration) const { return config_.mix_previous_iteration && iteration > 0; }
  // reuse_generations: sample `sample`'s cached response (this iteration's or the previous).
  const Response& cached_response(std::int64_t sample) const;
  // Where sample `sample`'s half `half` keeps its reference sum in ref_sums_: a ground truth's by
  // example (the same sequence in both of its samples), a generated response's by sample.
  std::size_t ref_slot(std::int64_t sample, int half) const;
  // Generates responses for `indices` (rollout_batch at a time, refilled as they finish), keyed by `stream`.
  std::vector<Response> generate(const std::vector<std::int64_t>& indices, const std::vector<data::Example>& examples,
                                 std::uint64_t stream);
  // Forms the pairs of `groups` from their responses, in the groups' order, micro-batches in whole
  // groups of `groups_of` (data::cut_micro_batches: training_groups() for a training step).
  Rollout pairs(const std::vector<std::vector<std::int64_t>>& groups, const std::vector<data::Example>& examples,
                const std::vector<const Response*>& responses, std::int64_t groups_of) const;
  // Interleaved stages: a training step's micro-batches in whole groups of the pipeline's stages; else 1.
  std::int64_t training_groups() const { return chunks_.size() > 1 ? grid_.pp_size() : 1; }
  // reuse_generations: the pairs of `groups` with the cached responses.
  Rollout cached_pairs(const std::vector<std::vector<std::int64_t>>& groups) const;
  Rollout rollout(const std::vector<std::vector<std::int64_t>>& groups, const std::vector<data::Example>& examples,
                  std::uint64_t stream, std::int64_t groups_of);
  // reuse_generations: every response of `iteration` that `step(iteration, epoch, index)` may
  // need, in the cache -- the first epoch's step `index`, or (a later epoch) all of them.
  void fill_cache(std::int64_t iteration, std::int64_t epoch, std::int64_t index);
  // This replica's responses to `indices`, generated, then shared over DP into the cache.
  void generate_into_cache(const std::vector<std::int64_t>& indices, std::uint64_t stream);
  // The responses of `iteration` that its first epoch's steps left out, generated into the cache
  // (once; each replica a contiguous share of them, in index order).
  void generate_left_out(std::int64_t iteration);
  // Every example's response of iteration cache_iteration_ in the cache, those missing generated
  // by the current reference as a later epoch would: the first epoch's steps a resumed process did
  // not run, as they ran, then those the steps left out (one epoch drops the last partial batch).
  void complete_cache();
  // On the last stage, per micro-batch, the reference sums of its sequences. `iteration`: a
  // training step's, whose examples_ the kept sums belong to; -1 (evaluation): none kept.
  std::vector<std::vector<float>> reference_sums(const Rollout& r, std::int64_t iteration);
  // Puts what the replicas scored of the step's cacheable halves into every rank's ref_sums_.
  void share_ref_sums(const Rollout& r, const std::vector<std::vector<float>>& sums);
  // Whether half `half` (0 real, 1 generated) of a pair keeps its reference sum all iteration
  // (not with one epoch an iteration, which meets each sample once, unless pregenerated).
  bool keeps_ref_sum(int half) const;
  // With ref_offload the reference goes into the policy's buffers when first needed in a step
  // (the policy's values parked in the gradient buffer) and leaves at release_reference(); a
  // step that needs no reference uploads nothing.
  void use_reference();
  void release_reference();
  class ReleaseReference;  // calls release_reference() at the end of a scope
  // Sums a rank's local SpinTotals and generation statistics over the replica and DP.
  SpinMetrics reduce(const SpinTotals& totals, const Rollout& r, double sft_nll_sum,
                     double sft_tokens) const;

  const parallel::ProcessGrid& grid_;
  model::TransformerChunks chunks_;  // before trainer_ and reference_generator_, which take them
  // Whether this rank holds the model's last layers (the head: the sequences' sums).
  bool last_stage() const { return chunks_.back()->stage().last; }
  model::ModelWeights& policy_;
  model::ModelWeights& grads_;
  model::ModelWeights& reference_;
  model::ModelWeights& reference_at_work_;  // the weights the reference runs with
  model::ModelWeights* adapters_;           // LoRA's, trained; null: full fine-tuning
  std::int64_t last_iteration_ = 0;         // of the latest step
  const std::vector<data::Example>& examples_;
  SpinConfig config_;
  data::BatchPlan plan_;
  std::optional<data::BatchPlan> mixed_plan_;  // mix_previous_iteration: over 2 x examples
  PipelineTrainer trainer_;
  generate::Generator reference_generator_;
  // reuse_generations: the iteration's responses by sample index (all of the data, on every
  // rank), which of its first epoch's steps have put theirs in and whether the samples that epoch
  // left out have been generated (the same on every rank: every rank runs the same steps).
  Responses cache_;
  std::int64_t cache_iteration_ = -1;
  std::vector<bool> cached_steps_;
  bool cached_rest_ = false;
  // mix_previous_iteration: every example's response of iteration previous_iteration_.
  Responses previous_;
  std::int64_t previous_iteration_ = -1;
  std::int64_t responses_generated_ = 0;
  std::int64_t tokens_generated_ = 0;  // by this replica's reference for training, all steps
  // cache_ref_logprobs: per sample [real, generated] reference sums of iteration
  // ref_sums_iteration_ (at ref_slot()), NaN where not known yet (the same on every rank).
  std::vector<float> ref_sums_;
  std::int64_t ref_sums_iteration_ = -1;
  std::int64_t reference_scored_ = 0;
  std::int64_t reference_uploads_ = 0;
  bool reference_swapped_in_ = false;  // ref_offload: the policy's buffers hold the reference
  // evaluate(): the reference's part of the last evaluation, and what it was of.
  struct Evaluated {
    std::int64_t iteration = -1;
    const std::vector<data::Example>* examples = nullptr;
    std::size_t count = 0;
    Rollout rollout;
    std::vector<std::vector<float>> reference;
  };
  Evaluated evaluated_;
  std::int64_t evaluation_rollouts_ = 0;
  std::function<void(std::int64_t, std::int64_t)> progress_;
};

}  // namespace spin::train
