// spin train: SPIN self-play fine-tuning.
//   mpirun -np 4 spin train --config jobs/configs/demo.ini [--section.key value ...]
// Per step: the reference model answers the step's prompts, the policy learns to tell the
// ground truth from those answers (train/spin_trainer.h); after each iteration the reference
// becomes the policy, the policy is written to <save_dir>/iteration_<k>, and validation runs.
// Metrics go to the log (one line per step), to <save_dir>/metrics.jsonl and to TensorBoard
// event files in <save_dir>/tensorboard.
// HDF5 checkpoints (policy, reference, AdamW state, position) go to <save_dir>/step_<n> every
// checkpoint.save_interval steps, at each iteration's end and at the end; a run started with
// checkpoint.resume (or checkpoint.load) continues exactly where the checkpoint left off, under
// any parallel layout.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "app/commands.h"
#include "app/model_setup.h"
#include "app/options.h"
#include "app/profile_window.h"
#include "app/runtime.h"
#include "app/stop_signals.h"
#include "app/train_config.h"
#include "app/train_files.h"
#include "app/train_metrics.h"
#include "app/train_setup.h"
#include "checkpoint/hf_writer.h"
#include "checkpoint/sharded_checkpoint.h"
#include "core/error.h"
#include "core/json_file.h"
#include "core/profile.h"
#include "data/examples.h"
#include "generate/generator.h"
#include "parallel/job_errors.h"
#include "train/checkpointing.h"
#include "train/spin_trainer.h"
#include "train/tensorboard.h"

namespace spin::app {

namespace {

namespace fs = std::filesystem;

// Where the run starts: its position, and what a checkpoint brings besides the weights.
struct StartingPoint {
  train::RunPosition at;
  std::vector<float> saved_cache;     // spin.reuse_generations' responses, when the checkpoint has them
  std::vector<float> saved_ref_sums;  // spin.cache_ref_logprobs' sums, likewise
  std::vector<float> saved_previous;  // spin.mix_previous_iteration's responses of the previous iteration
  std::vector<std::string> changed;   // settings that differ from the checkpoint's run
};

// The models' first values: model.path's weights (fresh adapters), or plan.loaded's checkpoint, under any
// layout, with the optimizer's state and the run's position -- refused where this run cannot carry on the
// checkpoint's (another batch size, train file, epoch count, LoRA or mixing).
StartingPoint load_starting_point(const TrainConfig& c, const TrainPlan& plan, model::ModelWeights& policy,
                                  model::ModelWeights& reference, model::ModelWeights* adapters,
                                  train::Optimizer& optimizer, const kernels::Kernels& k) {
  StartingPoint start;
  const std::string& loaded = plan.loaded;
  if (loaded.empty()) {
    load_model_weights(plan.source, c.model_adapter, plan.shard, policy, k);
    if (adapters) adapters->init_random(train::SpinTrainer::adapter_seed(plan.spin.seed, 0), 0.0f);
    if (&reference != &policy) reference.copy_from(policy);
    return start;
  }
  const ckpt::CheckpointReader reader(loaded);
  train::load_weights(reader, "policy", policy);
  const auto groups = reader.groups();
  if (std::find(groups.begin(), groups.end(), "reference") != groups.end()) {
    train::load_weights(reader, "reference", reference);  // LoRA: the base, over the merged policy
  } else if (&reference != &policy) {
    reference.copy_from(policy);  // saved at an iteration's end, or weights only
  }
  if (!reader.has_attribute("training_state")) {  // weights only: a fresh run from them
    if (adapters) adapters->init_random(train::SpinTrainer::adapter_seed(plan.spin.seed, 0), 0.0f);
    return start;
  }
  if (reader.has_attribute("config")) start.changed = changed_settings(reader.attribute("config"), c.to_ini());
  nlohmann::json state;
  try {
    state = nlohmann::json::parse(reader.attribute("training_state"));
    const auto same = [&](const char* key, std::int64_t ours, const char* what) {
      const std::int64_t theirs = state.at(key).get<std::int64_t>();
      require(theirs == ours, loaded, " was saved by a run with ", theirs, " ", what, "; this run has ", ours,
              ": its position in the data cannot be carried over");
    };
    same("global_batch_size", c.global_batch_size, "prompts per step (spin.global_batch_size)");
    same("steps_per_epoch", plan.shape.steps_per_epoch(0), "steps per epoch (the train file or batch size differ)");
    same("epochs", c.epochs, "epochs per iteration (spin.max_epochs)");
    require_same_lora(state.value("lora", ""), plan.lora, loaded);
    if (adapters) train::load_weights(reader, "lora", *adapters);
    const bool mixed = state.value("mix_previous_iteration", false);
    require(mixed == c.mix_previous_iteration, loaded, " was saved by a run ", mixed ? "with" : "without",
            " spin.mix_previous_iteration; this run is ", c.mix_previous_iteration ? "with" : "without",
            " it: the steps of its iterations differ");
    const auto saved_step = state.at("step").get<std::int64_t>();
    require(saved_step >= 0 && saved_step <= plan.shape.total(), loaded, " was saved at step ", saved_step,
            ", past this run's ", plan.shape.total(), " (spin.max_iterations is smaller)");
    start.at = plan.shape.at(saved_step);
    optimizer.load_state(reader, state.at("optimizer_steps").get<std::int64_t>(),
                         state.at("optimizer_skipped").get<std::int64_t>());
    if (c.reuse_generations && reader.has("spin", "reuse_cache")) {
      start.saved_cache = reader.read_all("spin", "reuse_cache");
    }
    if (c.cache_ref_logprobs && reader.has("spin", "ref_logprobs_cache")) {
      start.saved_ref_sums = reader.read_all("spin", "ref_logprobs_cache");
    }
    if (c.mix_previous_iteration && reader.has("spin", "previous_responses")) {
      start.saved_previous = reader.read_all("spin", "previous_responses");
    }
  } catch (const nlohmann::json::exception& e) {
    fail(loaded, ": malformed training_state (", e.what(), ")");
  }
  return start;
}

// What the run reads and how it runs it, on rank 0's standard output: the data, the template, the steps, the
// layout, the effective configuration and the pipeline's balance.
void print_run(const TrainConfig& c, const TrainPlan& plan, const parallel::ProcessGrid& grid, bool sequence_parallel,
               bool frozen_reference) {
  const char* split = sequence_parallel     ? ", sequence parallel"
                      : c.sequence_parallel ? " (model.sequence_parallel has no effect at tp 1)"
                                            : "";
  std::printf("spin train: %s\n", plan.train_data.report.summary(c.train).c_str());
  if (plan.tokenizer) {
    std::printf("spin train: prompt template %s (data.template = %s)\n", data::prompt_template_name(plan.prompt_format),
                c.prompt_template.c_str());
  }
  if (!c.validation.empty()) std::printf("spin train: %s\n", plan.validation_data.report.summary(c.validation).c_str());
  const train::RunShape& shape = plan.shape;
  const std::string later = shape.iterations() > 1 && shape.steps_per_epoch(1) != shape.steps_per_epoch(0)
                                ? " (" + std::to_string(shape.steps_per_epoch(1)) +
                                      " from iteration 2 on, with the previous iteration's responses)"
                                : "";
  const std::string experts =
      grid.ep_size() > 1 ? cat(", experts over ep ", grid.ep_size(), " (", plan.shard.dims.experts, " a rank)") : "";
  std::printf(
      "spin train: %lld iterations x %lld epochs x %lld steps%s (%lld in all) of %lld prompts; "
      "layout tp %d x pp %d%s x dp %d%s%s%s\n--- effective configuration ---\n%s---\n",
      static_cast<long long>(c.iterations), static_cast<long long>(c.epochs),
      static_cast<long long>(shape.steps_per_epoch(0)), later.c_str(), static_cast<long long>(plan.total_steps),
      static_cast<long long>(c.global_batch_size), grid.tp_size(), grid.pp_size(),
      c.vpp > 1 ? cat(" (", c.vpp, " chunks a stage)").c_str() : "", grid.dp_size(), experts.c_str(),
      c.distributed_optimizer ? ", distributed optimizer" : "", split, c.to_ini().c_str());
  std::fputs(balance_report("spin train", plan.shard, c.pp_layers, "parallel.pp_layers =").c_str(), stdout);
  if (frozen_reference) {
    std::printf("spin train: the %s held in bf16 alone (model.frozen_dtype = %s)\n",
                plan.lora.enabled() ? "reference, LoRA's base," : "reference", c.frozen_dtype.c_str());
  }
  std::fflush(stdout);
}

// Where a resumed run starts, on rank 0's standard output: the step, what the checkpoint brought besides the
// weights, and the settings changed since.
void print_resume(const std::string& loaded, const StartingPoint& start, bool cache_restored, bool ref_sums_restored) {
  const train::RunPosition& at = start.at;
  std::printf("spin train: loaded %s (step %lld: iteration %lld, epoch %lld, step %lld of the epoch)\n", loaded.c_str(),
              static_cast<long long>(at.step), static_cast<long long>(at.iteration + 1),
              static_cast<long long>(at.epoch + 1), static_cast<long long>(at.index + 1));
  if (cache_restored) std::printf("spin train: the iteration's generated responses came with it (no replay)\n");
  if (ref_sums_restored) std::printf("spin train: the iteration's reference log-probability sums came with it\n");
  if (!start.changed.empty()) {
    std::string list;
    for (const std::string& s : start.changed) {
      if (!list.empty()) list += "; ";
      list += s;
    }
    std::printf("spin train: settings changed since the checkpoint was written: %s\n", list.c_str());
  }
  std::fflush(stdout);
}

// spin.pregenerate's long call, on rank 0's standard output: a line at every tenth of this replica's share, once
// it has run for 5 s (short calls, as the left-out samples' of a later epoch, say nothing).
std::function<void(std::int64_t, std::int64_t)> generation_progress() {
  return [previous = std::int64_t{0}, since = std::chrono::steady_clock::now()](std::int64_t finished,
                                                                                std::int64_t total) mutable {
    if (finished < previous) {  // a new call
      previous = 0;
      since = std::chrono::steady_clock::now();
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
    if (finished * 10 / total > previous * 10 / total && seconds >= 5.0) {
      std::printf("spin train: generating the iteration's responses: %lld of %lld on this replica (%.0f s)\n",
                  static_cast<long long>(finished), static_cast<long long>(total), seconds);
      std::fflush(stdout);
    }
    previous = finished;
  };
}

// A step's line in the log.
void print_step(std::int64_t iteration, std::int64_t epoch, std::int64_t step, std::int64_t total_steps,
                const train::SpinStepMetrics& m, double peak_tflops, const std::string& eta) {
  const train::SpinMetrics& s = m.spin;
  const std::string gen_rate =
      m.generated_tokens > 0 ? cat(" (", std::llround(m.generation_tokens_per_second), " tok/s)") : "";
  const std::string mfu =
      peak_tflops > 0.0 ? cat(" (MFU ", std::llround(100.0 * m.tflops_per_rank / peak_tflops), "%)") : "";
  // A mixture of experts' busiest and idlest expert against the mean, its balance loss; under expert
  // parallelism the busiest rank's experts against the ranks' mean.
  char load[128] = "", ranks[32] = "";
  if (m.expert_rank_load_max > 0.0) std::snprintf(ranks, sizeof ranks, " (ranks %.2fx)", m.expert_rank_load_max);
  if (m.expert_load_max > 0.0) {
    std::snprintf(load, sizeof load, " | experts %.2f-%.2fx%s balance %.4f", m.expert_load_min, m.expert_load_max,
                  ranks, m.balance_loss);
  }
  std::printf(
      "iter %lld epoch %lld step %lld/%lld | loss %.4f | rewards real %.4f gen %.4f margin %.4f "
      "| accuracy %.3f | gen len %.1f (max %.0f, %.0f%% capped) | lr %.3e | grad norm %.4f | "
      "%.0f tok/s, %.3g TFLOP/s a rank%s | gen %.2fs%s ref %.2fs train %.2fs%s | eta %s%s\n",
      static_cast<long long>(iteration + 1), static_cast<long long>(epoch + 1), static_cast<long long>(step),
      static_cast<long long>(total_steps), s.loss, s.rewards_actual, s.rewards_generated, s.margin, s.accuracy,
      s.generated_length_mean, s.generated_length_max, 100.0 * s.length_capped, m.lr, m.grad_norm, m.tokens_per_second,
      m.tflops_per_rank, mfu.c_str(), m.seconds_generation, gen_rate.c_str(), m.seconds_reference, m.seconds_training,
      load, eta.c_str(), m.applied ? "" : " | skipped (non-finite)");
  std::fflush(stdout);
}

// A validation's line in the log, and the policy's greedy answers to the first prompts (`shown`) beside the ground
// truth, as text where there is a tokenizer.
void print_validation(std::int64_t iteration, std::int64_t steps_done, const train::SpinMetrics& v,
                      const std::vector<generate::Generation>& shown, const std::vector<data::Example>& examples,
                      const data::Tokenizer* tokenizer) {
  std::printf(
      "validation  iter %lld step %lld | loss %.4f | rewards real %.4f gen %.4f margin %.4f | "
      "accuracy %.3f | sft nll %.4f | gen len %.1f\n",
      static_cast<long long>(iteration + 1), static_cast<long long>(steps_done), v.loss, v.rewards_actual,
      v.rewards_generated, v.margin, v.accuracy, v.sft_nll, v.generated_length_mean);
  for (std::size_t i = 0; i < shown.size() && tokenizer != nullptr; ++i) {
    std::printf("  [%zu] %s -> %s (truth: %s)\n", i, data::printable(tokenizer->decode(examples[i].prompt)).c_str(),
                data::printable(tokenizer->decode(shown[i].tokens)).c_str(),
                data::printable(tokenizer->decode(examples[i].response)).c_str());
  }
}

// A checkpoint's training_state: the position, what a resumed run must share with this one, and the seeds
// (the random streams are counter-based, keyed by them and the position).
nlohmann::json training_state(const TrainConfig& c, const TrainPlan& plan, std::int64_t step,
                              const train::Optimizer& optimizer, bool with_reference) {
  const train::RunPosition p = plan.shape.at(step);
  return {{"step", step},
          {"iteration", p.iteration + 1},
          {"epoch", p.epoch + 1},
          {"index", p.index},
          {"consumed_samples", step * c.global_batch_size},
          {"global_batch_size", c.global_batch_size},
          {"steps_per_epoch", plan.shape.steps_per_epoch(0)},
          {"epochs", c.epochs},
          {"mix_previous_iteration", c.mix_previous_iteration},
          {"optimizer_steps", optimizer.steps_taken()},
          {"optimizer_skipped", optimizer.steps_skipped()},
          {"reference", with_reference ? "saved" : "policy"},
          {"data_seed", c.data_seed},
          {"shuffle", c.shuffle},
          {"sampling_seed", c.sampling_seed},
          {"kl_penalty", plan.spin.kl_penalty},
          {"loss", c.loss},
          {"label_smoothing", c.label_smoothing},
          {"sft_loss_weight", c.sft_loss_weight},
          {"average_log_probs", c.average_log_probs},
          {"lora", plan.lora.summary()}};
}

}  // namespace

int run_train(int argc, char** argv, parallel::Communicator& world) {
  const auto parsed = parse_command<TrainConfig>(
      world, [&](bool print) { return parse_train_config(argc, argv, print); });
  if (!parsed) return 0;
  const TrainConfig& c = parsed->first;
  const parallel::Layout layout = parsed->second;
  const bool root = world.rank() == 0;
  const Runtime runtime({.device = c.device,
                         .precision = c.precision,
                         .attention_backend = c.attention_backend,
                         .distributed_timeout_minutes = c.distributed_timeout_minutes,
                         .timeout_setting = "parallel.distributed_timeout_minutes"},
                        world);
  const parallel::ProcessGrid grid(runtime.world(), layout);
  const auto start = std::chrono::steady_clock::now();

  // ---- everything that can be wrong, before any work --------------------------------------
  std::optional<TrainPlan> planned;
  std::optional<ProfileWindow> profile_window;
  parallel::run_collectively(world, [&] {
    set_time_limit(c.exit_duration_mins, "checkpoint.exit_duration_mins");
    profile_window.emplace(c.profile_step_start, c.profile_step_end, fs::path(c.save_dir) / "profile", world.rank(),
                           "logging.profile_step_start", "logging.profile_step_end");
    planned.emplace(plan_train_run(c, grid, root));
    if (root) {
      require_creatable_dir(c.save_dir, "checkpoint.save_dir", true);
      write_text_file((fs::path(c.save_dir) / "config.ini").string(), c.to_ini());
    }
  });
  const TrainPlan& plan = *planned;
  const ModelShard& shard = plan.shard;
  const model::ModelConfig& mc = shard.config;
  const model::LoraConfig& lora = plan.lora;
  const train::RunShape& shape = plan.shape;
  const std::int64_t total_steps = plan.total_steps;
  const std::string& loaded = plan.loaded;

  // ---- the models and the optimizer, in this rank's shard ---------------------------------
  const std::int64_t pad = c.distributed_optimizer ? grid.dp_size() : 1;
  // spin.ref_offload: the reference's values in host memory (no bf16 copy: the policy's
  // buffers hold it while it works, train/spin_trainer.h). model.frozen_bf16: in bf16 alone.
  const model::WeightStorage frozen = frozen_storage(c.frozen_dtype, c.precision == "bf16", lora.enabled());
  model::ModelWeights reference(mc, shard.dims, shard.chunks, pad, c.ref_offload ? Device::Cpu : runtime.device(),
                                frozen);
  // lora.rank: one model in memory, the reference, frozen; the policy is it + the adapters, the
  // only trained parameters (the gradients and the optimizer's state are theirs).
  std::optional<model::ModelWeights> own_policy, adapters;
  if (lora.enabled()) {
    adapters.emplace(model::ModelWeights::adapters(mc, lora, shard.dims, shard.chunks, pad, runtime.device()));
  } else {
    own_policy.emplace(mc, shard.dims, shard.chunks, pad, runtime.device());
  }
  model::ModelWeights& policy = lora.enabled() ? reference : *own_policy;
  model::ModelWeights& trained = lora.enabled() ? *adapters : policy;
  model::ModelWeights grads =
      lora.enabled() ? model::ModelWeights::adapters(mc, lora, shard.dims, shard.chunks, pad, runtime.device())
                     : model::ModelWeights(mc, shard.dims, shard.chunks, pad, runtime.device());
  model::ModelWeights* const adapters_or_null = adapters ? &*adapters : nullptr;

  const kernels::Kernels& k = runtime.kernels();
  // One Transformer a model chunk of the stage (one without parallel.vpp).
  model::StageTransformers transformers(mc, shard.dims, shard.chunks, grid.tp(), k);
  transformers.set_recompute_activations(c.recompute_activations, c.recompute_num_layers);
  transformers.set_sequence_parallel(c.sequence_parallel);
  transformers.set_logits_chunk_rows(c.logits_chunk_rows);
  const model::TransformerChunks& chunks = transformers.chunks();
  train::Optimizer optimizer(plan.optimizer, grid, trained, grads, k);

  // ---- the starting point: a checkpoint (any layout), or model.path ------------------------
  StartingPoint starting;
  parallel::run_collectively(
      world, [&] { starting = load_starting_point(c, plan, policy, reference, adapters_or_null, optimizer, k); });
  const train::RunPosition at = starting.at;
  runtime.prepare(policy);  // after loading: their bf16 copies are made from the loaded values
  if (!c.ref_offload) runtime.prepare(reference);
  if (adapters) runtime.prepare(*adapters);
  train::SpinTrainer trainer(grid, chunks, policy, grads, reference, optimizer, plan.train_data.examples, plan.spin,
                             adapters_or_null);
  const bool cache_restored =
      !starting.saved_cache.empty() && trainer.restore_reuse_cache(starting.saved_cache, at.iteration);
  const bool ref_sums_restored =
      !starting.saved_ref_sums.empty() && trainer.restore_ref_logprobs_cache(starting.saved_ref_sums, at.iteration);
  // Past the first iteration a mixing run trains on the previous iteration's responses, whose
  // reference is gone: the checkpoint must hold them (every rank read the same).
  require(!c.mix_previous_iteration || at.iteration == 0 || at.iteration >= c.iterations ||
              trainer.restore_previous_responses(starting.saved_previous, at.iteration),
          loaded, " does not hold iteration ", at.iteration, "'s generated responses, which iteration ",
          at.iteration + 1,
          " trains on with spin.mix_previous_iteration (spin/previous_responses; saved by every checkpoint of a mixing "
          "run past its first iteration)");
  generate::Generator policy_generator(grid, chunks, policy, adapters_or_null);
  if (root && c.pregenerate) trainer.set_generation_progress(generation_progress());

  std::optional<MetricsLog> metrics;
  if (root) {
    print_run(c, plan, grid, chunks.front()->sequence_parallel(), reference.frozen());
    if (!loaded.empty()) print_resume(loaded, starting, cache_restored, ref_sums_restored);
    metrics.emplace(c.save_dir, c.tensorboard, at.step, c.peak_tflops);
  }

  // HDF5 checkpoint of everything a resumed run needs. At an iteration's end the reference
  // equals the policy and is not written twice.
  std::int64_t step = at.step, saved_step = loaded.empty() ? -1 : at.step;
  train::CheckpointSaver saver(c.async_save);
  // Commits a checkpoint still being written in the background (collective).
  const auto finish_saving = [&] {
    const std::optional<std::string> done = saver.finish();
    if (root && done) {
      std::printf("spin train: saved checkpoint %s (written in the background)\n", done->c_str());
      std::fflush(stdout);
    }
  };
  const auto save = [&](bool with_reference) {
    const profile::Range range("checkpoint");
    finish_saving();
    const nlohmann::json state = training_state(c, plan, step, optimizer, with_reference);
    const nlohmann::json layout_json = {{"tp", grid.tp_size()}, {"pp", grid.pp_size()},
                                        {"vpp", c.vpp},         {"dp", grid.dp_size()},
                                        {"ep", c.ep},           {"distributed_optimizer", c.distributed_optimizer}};
    const std::vector<std::string> extra = tokenizer_files(plan.source.dir);
    // The trainer's caches of the iteration (the same on every rank: world rank 0 writes them):
    // spin.reuse_generations' responses so far, so that a resumed run need not generate them
    // again, and spin.cache_ref_logprobs' reference sums, so that it need not score them again.
    const std::vector<float> cache = root ? trainer.reuse_cache() : std::vector<float>();
    const std::vector<float> ref_sums = root ? trainer.ref_logprobs_cache() : std::vector<float>();
    const std::vector<float> previous = root ? trainer.previous_responses() : std::vector<float>();
    std::vector<ckpt::PieceWrite> trainer_caches;
    for (const auto& [name, values] : {std::pair{"reuse_cache", &cache}, std::pair{"ref_logprobs_cache", &ref_sums},
                                       std::pair{"previous_responses", &previous}}) {
      if (values->empty()) continue;
      const auto n = static_cast<std::int64_t>(values->size());
      trainer_caches.push_back({"spin", name, {n}, {0}, {n}, values->data()});
    }
    // LoRA: the policy written is the merged model, the reference the base, the adapters besides.
    std::optional<train::AdapterCheckpoint> lora_part;
    std::map<std::string, std::string> attributes = {{"training_state", state.dump()},
                                                     {"model_config", mc.json_text},
                                                     {"layout", layout_json.dump()},
                                                     {"config", c.to_ini()}};
    if (adapters) {
      lora_part.emplace(grid, mc, shard.dims, shard.chunks, pad, reference, *adapters);
      trainer_caches.insert(trainer_caches.end(), lora_part->pieces.begin(), lora_part->pieces.end());
      attributes["lora_config"] = lora_config_json(lora);
    }
    saver.save(c.save_dir, step, grid, lora_part ? lora_part->policy_or(policy) : policy,
               with_reference ? &reference : nullptr, &optimizer, c.distributed_optimizer, attributes, c.keep_last,
               extra, trainer_caches);
    saved_step = step;
    if (root && !saver.pending()) {
      std::printf("spin train: saved checkpoint %s\n", ckpt::checkpoint_dir(c.save_dir, step).c_str());
      std::fflush(stdout);
    }
  };

  const auto validate = [&](std::int64_t iteration, std::int64_t epoch, std::int64_t steps_done,
                            std::int64_t consumed) {
    if (plan.validation_data.examples.empty()) return;
    const profile::Range range("validation");
    const train::SpinMetrics v = trainer.evaluate(plan.validation_data.examples, iteration);
    // A few greedy answers of the policy, as text (replica 0).
    std::vector<generate::Generation> shown;
    const auto count = std::min<std::size_t>(static_cast<std::size_t>(std::max<std::int64_t>(c.validation_examples, 0)),
                                             plan.validation_data.examples.size());
    if (grid.dp_rank() == 0 && count > 0) {
      std::vector<std::vector<std::int32_t>> prompts;
      for (std::size_t i = 0; i < count; ++i) prompts.push_back(plan.validation_data.examples[i].prompt);
      generate::GenerationParams greedy = plan.spin.generation;
      greedy.sampling = {};
      greedy.sampling.greedy = true;
      shown = policy_generator.generate(prompts, std::vector<std::uint64_t>(count, 0), greedy);
    }
    if (!root) return;
    print_validation(iteration, steps_done, v, shown, plan.validation_data.examples, plan.tokenizer.get());
    metrics->record("validation", iteration, epoch, steps_done, consumed, v, nullptr);
    std::fflush(stdout);
  };

  // A stop signal on any rank (stop_signals.h), agreed at a step boundary.
  install_stop_handlers();
  bool stopping = false;
  bool memory_reported = false;  // device memory, once, after this run's first step
  // The time left at this run's pace so far (validation and checkpoints included).
  const auto loop_start = std::chrono::steady_clock::now();
  const auto eta = [&](std::int64_t done) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - loop_start).count();
    return duration_text(elapsed / static_cast<double>(std::max<std::int64_t>(done - at.step, 1)) *
                         static_cast<double>(total_steps - done));
  };

  for (std::int64_t iteration = at.iteration; iteration < c.iterations && step < total_steps && !stopping;
       ++iteration) {
    std::int64_t epoch = iteration == at.iteration ? at.epoch : 0;
    for (; epoch < c.epochs && step < total_steps && !stopping; ++epoch) {
      const std::int64_t first = iteration == at.iteration && epoch == at.epoch ? at.index : 0;
      for (std::int64_t index = first; index < shape.steps_per_epoch(iteration) && step < total_steps; ++index) {
        if (stop_agreed(world, step > at.step)) {
          stopping = true;
          break;
        }
        profile_window->before_step(step + 1);
        std::optional<profile::Range> step_range(std::in_place, "step", "step", step + 1);
        const double lr = plan.lr(iteration, step);
        const train::SpinStepMetrics m = trainer.step(iteration, epoch, index, lr);
        if (!memory_reported) runtime.report_memory("after the first step");
        memory_reported = true;
        ++step;
        raise_test_stop(world, "signal-after-step", step);
        const std::int64_t consumed = step * c.global_batch_size;
        if (root) {
          print_step(iteration, epoch, step, total_steps, m, c.peak_tflops, eta(step));
          metrics->record("train", iteration, epoch, step, consumed, m.spin, &m);
        }
        if (c.validation_interval > 0 && step % c.validation_interval == 0) {
          validate(iteration, epoch, step, consumed);
        }
        const bool iteration_ends = step == shape.first_step(iteration + 1);
        if (c.save_interval > 0 && step % c.save_interval == 0 && !iteration_ends) save(true);
        step_range.reset();
        profile_window->after_step(step);
        profile_window->report("spin train");
      }
    }
    if (stopping || step != shape.first_step(iteration + 1)) break;  // a signal, spin.max_steps
    // The end of an iteration: validation (without an interval) against this iteration's
    // reference, the reference becomes the policy (a local copy; LoRA: the adapters merged into it),
    // then it is saved.
    if (c.validation_interval == 0) validate(iteration, epoch - 1, step, step * c.global_batch_size);
    const std::string dir = (fs::path(c.save_dir) / ("iteration_" + std::to_string(iteration + 1))).string();
    if (c.save_generations) {
      const auto responses = trainer.iteration_responses();  // collective: the left-out ones generated
      const fs::path file = fs::path(c.save_dir) / "generations" / cat("iteration_", iteration + 1, ".jsonl");
      if (root) {
        write_generations(file, plan.train_data.examples, responses, plan.tokenizer.get(), plan.prompt_format);
        std::printf("spin train: iteration %lld's responses in %s\n", static_cast<long long>(iteration + 1),
                    file.c_str());
      }
    }
    trainer.sync_reference();
    save_policy(dir, plan.source.dir, mc, policy, grid,
                plan.save_format);  // = the reference now (LoRA: the adapters merged)
    // The next iteration a run of its own; LoRA's fresh adapters have no history either.
    if (c.reset_each_iteration || lora.enabled()) optimizer.reset_state();
    if (root) std::printf("spin train: iteration %lld done, wrote %s\n", static_cast<long long>(iteration + 1), dir.c_str());
    save(false);
  }
  profile_window->finish();  // the run ended inside the window
  profile_window->report("spin train");
  // Stopped inside an iteration (a signal, spin.max_steps): a checkpoint to resume from. At an
  // iteration's start the reference is the policy.
  if (saved_step != step) save(step != shape.first_step(shape.at(step).iteration));
  finish_saving();
  if (stopping) {
    if (root) {
      std::printf("spin train: stopped by %s after step %lld; resume from %s (exit status %d: requeue)\n",
                  stop_reason().c_str(), static_cast<long long>(step),
                  ckpt::checkpoint_dir(c.save_dir, step).c_str(), kExitRequeue);
    }
    return kExitRequeue;
  }
  if (root) {
    std::printf("spin train: %lld steps in %.1f s (now at step %lld of %lld)\n",
                static_cast<long long>(step - at.step),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
                static_cast<long long>(step), static_cast<long long>(shape.total()));
  }
  return 0;
}

}  // namespace spin::app
