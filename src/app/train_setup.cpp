#include "app/train_setup.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "app/train_files.h"
#include "core/error.h"
#include "generate/generator.h"

namespace spin::app {

namespace {

// The model's shard in the run's layout, with the run's router settings applied to its config.
ModelShard train_shard(const TrainConfig& c, const parallel::ProcessGrid& grid, const model::ModelConfig& config) {
  ModelShard shard =
      plan_model_shard(config, grid, c.pp_layers, c.vpp,
                       balance_tokens(config, c.max_prompt_tokens, c.max_response_tokens, c.max_new_tokens),
                       {.pp_layers = "parallel.pp_layers", .vpp = "parallel.vpp"});
  // Interleaved stages: at least pp micro-batches a step -- the fixed count, or cut by tokens split to
  // reach it (data::cut_micro_batches), which a replica's pairs must allow. (A batch that does not split
  // into micro-batches at all is the batch plan's error.)
  const std::int64_t split =
      std::max<std::int64_t>(1, (c.micro_batch_tokens > 0 ? 1 : c.micro_batch_size) * grid.dp_size());
  if (c.global_batch_size % split == 0) {
    check_interleaved_step(
        "parallel.vpp =", c.vpp, grid.pp_size(), c.global_batch_size / split, c.micro_batch_tokens > 0,
        c.micro_batch_tokens > 0 ? "spin.global_batch_size / data-parallel size"
                                 : "spin.global_batch_size / (spin.micro_batch_size x data-parallel size)");
  }
  require(std::isfinite(c.router_aux_loss_coef) && std::isfinite(c.router_z_loss_coef),
          "model.router_aux_loss_coef and model.router_z_loss_coef must be finite, got ", c.router_aux_loss_coef,
          " and ", c.router_z_loss_coef);
  if (c.router_aux_loss_coef >= 0.0) {
    require(shard.config.moe(), "model.router_aux_loss_coef = ", c.router_aux_loss_coef, ": ", c.model_path,
            " is not a mixture of experts");
    require(!shard.config.router_sigmoid || c.router_aux_loss_coef == 0.0,
            "model.router_aux_loss_coef = ", c.router_aux_loss_coef, ": ", c.model_path,
            " routes by sigmoid scores with a correction bias (GLM-4.5's), which the load-balancing loss over the "
            "softmax does not describe; 0 or unset");
    shard.config.router_aux_loss_coef = static_cast<float>(c.router_aux_loss_coef);
  }
  if (c.router_z_loss_coef != 0.0) {
    require(c.router_z_loss_coef > 0.0, "model.router_z_loss_coef must be >= 0, got ", c.router_z_loss_coef);
    require(shard.config.moe(), "model.router_z_loss_coef = ", c.router_z_loss_coef, ": ", c.model_path,
            " is not a mixture of experts");
    shard.config.router_z_loss_coef = static_cast<float>(c.router_z_loss_coef);
  }
  set_router_bias_update_rate(shard.config, c.router_bias_update_rate, c.lora_rank, "model.router_bias_update_rate",
                              c.model_path);
  return shard;
}

// The checkpoints' and the data's bounds.
void check_settings(const TrainConfig& c) {
  require(c.save_max_shard_size > 0, "checkpoint.save_max_shard_size must be positive, got ", c.save_max_shard_size);
  require(c.save_interval >= 0 && c.keep_last >= 0 && c.validation_interval >= 0,
          "checkpoint.save_interval, checkpoint.keep_last and spin.validation_interval must not be negative (0: "
          "their default behaviour), got ",
          c.save_interval, ", ", c.keep_last, " and ", c.validation_interval);
  require(c.max_prompt_tokens >= 0 && c.max_response_tokens >= 0,
          "data.max_prompt_tokens and data.max_response_tokens must not be negative (0: no limit), got ",
          c.max_prompt_tokens, " and ", c.max_response_tokens);
}

// The [optim] section, checked.
train::OptimizerConfig optimizer_settings(const TrainConfig& c) {
  train::OptimizerConfig oc;
  oc.algorithm = train::parse_optimizer_algorithm(c.optimizer, "optim.name");
  oc.alpha = c.rmsprop_alpha;
  oc.beta1 = c.adam_beta1;
  oc.beta2 = c.adam_beta2;
  oc.eps = c.adam_eps;
  oc.weight_decay = c.weight_decay;
  oc.decay_embeddings = c.decay_embeddings;
  oc.clip_grad = c.clip_grad;
  oc.distributed = c.distributed_optimizer;
  oc.overlap_grad_reduce = c.overlap_grad_reduce;
  oc.max_nonfinite_in_a_row = c.max_nonfinite_steps;
  oc.validate({.alpha = "optim.alpha",
               .betas = "optim.beta1 and optim.beta2",
               .eps = "optim.eps",
               .weight_decay = "optim.weight_decay",
               .clip_grad = "optim.clip_grad",
               .max_nonfinite = "optim.max_nonfinite_steps"});
  return oc;
}

// The lengths a sample may have: every one must leave room for a generated response of max_new_tokens.
data::LengthLimits length_limits(const TrainConfig& c, const model::ModelConfig& mc) {
  data::LengthLimits limits;
  limits.max_prompt = c.max_prompt_tokens > 0 ? c.max_prompt_tokens : mc.max_sequence_length() - c.max_new_tokens;
  require(limits.max_prompt >= 1, "sampling.max_new_tokens (", c.max_new_tokens,
          ") leaves no room for a prompt in the model's ", mc.max_sequence_length(), " positions");
  require(limits.max_prompt + c.max_new_tokens <= mc.max_sequence_length(), "data.max_prompt_tokens (",
          limits.max_prompt, ") + sampling.max_new_tokens (", c.max_new_tokens, ") exceed the model's ",
          mc.max_sequence_length(), " positions");
  limits.max_response = c.max_response_tokens;
  limits.max_sequence = mc.max_sequence_length();
  require(c.overlong == "drop" || c.overlong == "truncate", "data.overlong \"", c.overlong,
          "\" is not drop or truncate");
  limits.overlong = c.overlong == "drop" ? data::Overlong::Drop : data::Overlong::Truncate;
  return limits;
}

// The [spin] section, and the [sampling] section's generation settings (the responses ending as the real ones
// do: the model's stop ids under `prompt_format`, and sampling.end_strings through the tokenizer).
train::SpinConfig spin_settings(const TrainConfig& c, const parallel::ProcessGrid& grid, const TrainPlan& plan) {
  const model::ModelConfig& mc = plan.shard.config;
  train::SpinConfig spin;
  spin.kl_penalty = parse_lambdas(c.kl_penalty);
  spin.objective = {train::SpinObjective::parse(c.loss), c.label_smoothing, c.sft_loss_weight,
                    c.average_log_probs};  // spin.validate() checks
  spin.iterations = c.iterations;
  spin.epochs = c.epochs;
  spin.max_steps = c.max_steps;
  spin.global_batch = c.global_batch_size;
  spin.micro_batch = c.micro_batch_size;
  spin.micro_batch_tokens = c.micro_batch_tokens;
  spin.rollout_batch = c.rollout_batch_size;
  spin.rollout_step_tokens = c.rollout_step_tokens;
  generate::check_step_tokens(c.rollout_step_tokens, c.rollout_batch_size, grid.pp_size(), "spin.rollout_step_tokens");
  require(c.ref_logprobs == "forward" || c.ref_logprobs == "sampler", "spin.ref_logprobs \"", c.ref_logprobs,
          "\" is not forward or sampler");
  spin.ref_logprobs_from_sampler = c.ref_logprobs == "sampler";
  spin.generations_from_data = c.generations == "data";
  spin.ref_offload = c.ref_offload;
  spin.reuse_generations = c.reuse_generations;
  spin.pregenerate = c.pregenerate;
  spin.mix_previous_iteration = c.mix_previous_iteration;
  require(
      !c.save_generations || c.reuse_generations,
      "spin.save_generations writes an iteration's one response per prompt: it needs spin.reuse_generations = true");
  spin.cache_ref_logprobs = c.cache_ref_logprobs;
  spin.overlap_p2p_comm = c.overlap_p2p_comm;
  spin.seed = static_cast<std::uint64_t>(c.data_seed);
  spin.shuffle = c.shuffle;
  generate::GenerationParams& g = spin.generation;
  g.sampling = {.greedy = c.greedy,
                .temperature = c.temperature,
                .top_k = c.top_k,
                .top_p = c.top_p,
                .repetition_penalty = c.repetition_penalty,
                .min_p = c.min_p};
  g.max_new_tokens = c.max_new_tokens;
  g.min_new_tokens = c.min_new_tokens;
  g.seed = static_cast<std::uint64_t>(c.sampling_seed);
  g.eos_ids = stop_ids(plan.source.dir, mc, plan.tokenizer.get(), plan.prompt_format);  // as the real responses end
  if (!c.end_strings.empty()) {
    const nlohmann::json list = nlohmann::json::parse(c.end_strings, nullptr, false);
    require(list.is_array() && std::all_of(list.begin(), list.end(), [](const auto& s) { return s.is_string(); }),
            "sampling.end_strings must be a JSON list of strings, e.g. [\"###\"], got ", c.end_strings);
    require(plan.tokenizer != nullptr, "sampling.end_strings needs the model's tokenizer (", c.model_path,
            " has none)");
    for (const auto& s : list) g.end_strings.push_back(s.get<std::string>());
    g.detokenize = [t = plan.tokenizer.get()](std::span<const std::int32_t> ids) { return t->decode(ids); };
  }
  g.validate(mc.vocab_size);
  spin.validate();
  return spin;
}

// The learning rates: the schedule spans the whole run (or, with optim.reset_each_iteration, each iteration),
// whatever spin.max_steps says -- a run stopped early and resumed follows the same learning rates as one that
// never stopped.
std::vector<train::LrSchedule> lr_schedules(const TrainConfig& c, const train::RunShape& shape) {
  require(c.warmup_ratio >= 0.0 && c.warmup_ratio < 1.0, "optim.warmup_ratio must be in [0, 1), got ", c.warmup_ratio);
  require(std::isfinite(c.peak_tflops) && c.peak_tflops >= 0.0, "logging.peak_tflops must be >= 0 (0: no MFU), got ",
          c.peak_tflops);
  require(c.warmup_ratio == 0.0 || c.warmup_steps == 0,
          "optim.warmup_ratio and optim.warmup_steps are both set; give one");
  require(c.wsd_decay_ratio >= 0.0 && c.wsd_decay_ratio <= 1.0, "optim.wsd_decay_ratio must be in [0, 1], got ",
          c.wsd_decay_ratio);
  require(c.wsd_decay_ratio == 0.0 || c.wsd_decay_steps == 0,
          "optim.wsd_decay_ratio and optim.wsd_decay_steps are both set; give one");
  require(c.lr_decay_steps >= 0, "optim.decay_steps must not be negative (0: the last step), got ", c.lr_decay_steps);
  const auto schedule_of = [&](std::int64_t steps) {
    // A share of the schedule's steps, rounded up, where the ratio is given; else the count.
    const auto steps_of = [&](double ratio, std::int64_t count) {
      return ratio > 0.0 ? static_cast<std::int64_t>(std::ceil(ratio * static_cast<double>(steps))) : count;
    };
    train::LrSchedule s = {train::parse_lr_decay(c.lr_schedule),
                           c.lr,
                           c.min_lr,
                           steps_of(c.warmup_ratio, c.warmup_steps),
                           c.lr_decay_steps > 0 ? c.lr_decay_steps : steps,
                           c.constant_steps,
                           steps};
    s.wsd_decay_steps = steps_of(c.wsd_decay_ratio, c.wsd_decay_steps);
    s.wsd_decay = train::parse_wsd_decay(c.wsd_decay_style);
    s.validate();
    return s;
  };
  std::vector<train::LrSchedule> schedules;
  for (std::int64_t k = 0; k < (c.reset_each_iteration ? shape.iterations() : 1); ++k) {
    schedules.push_back(schedule_of(c.reset_each_iteration ? shape.steps_in_iteration(k) : shape.total()));
  }
  return schedules;
}

}  // namespace

double TrainPlan::lr(std::int64_t iteration, std::int64_t step) const {
  if (schedules.size() == 1) return schedules[0].at(step);  // one for the run (or its one iteration)
  return schedules[static_cast<std::size_t>(iteration)].at(step - shape.first_step(iteration));
}

TrainPlan plan_train_run(const TrainConfig& c, const parallel::ProcessGrid& grid, bool check_headers) {
  TrainPlan plan;
  plan.source = model_source(c.model_path, c.model_adapter, check_headers);
  plan.shard = train_shard(c, grid, plan.source.config);
  const model::ModelConfig& mc = plan.shard.config;
  check_settings(c);
  plan.save_format =
      hf_format(c.save_dtype, "checkpoint.save_dtype", mc, static_cast<std::uint64_t>(c.save_max_shard_size));
  plan.optimizer = optimizer_settings(c);
  plan.lora = lora_settings(c.lora_rank, c.lora_alpha, c.lora_rslora, c.lora_dropout, c.lora_targets, "lora.", mc);
  if (!c.model_adapter.empty()) lora_from_peft_config(c.model_adapter);  // refused before any work
  require(!plan.lora.enabled() || !c.ref_offload, "spin.ref_offload with lora.rank ", plan.lora.rank,
          ": a LoRA run holds one model, the reference, and the policy is it + the adapters: nothing to offload");
  plan.tokenizer = load_tokenizer(plan.source.dir, mc);
  const data::LengthLimits limits = length_limits(c, mc);
  plan.prompt_format = data::choose_prompt_template(c.prompt_template, plan.tokenizer.get());
  require(c.generations == "reference" || c.generations == "data", "spin.generations \"", c.generations,
          "\" is not reference or data");
  const data::RecordColumns columns = data::RecordColumns::parse(c.columns, "data.columns");
  plan.spin = spin_settings(c, grid, plan);
  // The data last: every setting above is checked before the expensive part.
  const data::ExampleOptions reading{.skip_bad_lines = c.skip_bad_lines,
                                     .read_generated = plan.spin.generations_from_data,
                                     .workers = c.data_workers,
                                     .columns = columns};
  plan.train_data =
      data::load_examples(c.train, plan.tokenizer.get(), plan.prompt_format, limits, mc.vocab_size, reading);
  if (!c.validation.empty()) {
    plan.validation_data =
        data::load_examples(c.validation, plan.tokenizer.get(), plan.prompt_format, limits, mc.vocab_size, reading);
  }
  // Said here with what was read (the batch plan's own error knows neither the file nor what was left out).
  require(c.global_batch_size <= static_cast<std::int64_t>(plan.train_data.examples.size()), "spin.global_batch_size ",
          c.global_batch_size, " exceeds the ", plan.train_data.examples.size(), " examples of the training data (",
          plan.train_data.report.summary(c.train), ")");
  plan.shape =
      train::spin_run_shape(plan.spin, static_cast<std::int64_t>(plan.train_data.examples.size()), grid.dp_size());
  plan.total_steps = c.max_steps > 0 ? std::min(plan.shape.total(), c.max_steps) : plan.shape.total();
  plan.schedules = lr_schedules(c, plan.shape);
  plan.loaded = checkpoint_to_load(c);
  return plan;
}

}  // namespace spin::app
