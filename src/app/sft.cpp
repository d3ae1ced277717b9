// spin sft: supervised fine-tuning on token-id JSONL, TP x PP x DP with the 1F1B schedule.
//   mpirun -np 8 spin sft --model HF_DIR --train data.jsonl --output OUT_DIR
//       --tp 2 --pp 2 --global-batch-size 32 --micro-batch-size 2 --lr 1e-5 ...
// Data: any shape data/examples.h reads (text through the model's tokenizer and a prompt
// template, or token ids). The loss is the mean negative log-likelihood per response token
// over each global batch.
// Every set-up error (options, model, data, layout) is found before training starts and
// reported once. The trained weights are written as a Hugging Face directory. With --save-dir,
// sharded checkpoints (policy and AdamW state, as spin train's) every --save-interval steps and
// when SIGTERM / SIGUSR1 stops the run (exit 75); --resume goes on from <save-dir>/latest.
#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <tuple>

#include "app/commands.h"
#include "app/model_setup.h"
#include "app/options.h"
#include "app/profile_window.h"
#include "app/resumable_output.h"
#include "app/runtime.h"
#include "app/stop_signals.h"
#include "app/train_metrics.h"
#include "checkpoint/hf_writer.h"
#include "checkpoint/sharded_checkpoint.h"
#include "core/error.h"
#include "core/profile.h"
#include "data/batch_plan.h"
#include "data/examples.h"
#include "data/prompt_template.h"
#include "model/flops.h"
#include "model/transformer.h"
#include "parallel/job_errors.h"
#include "parallel/process_grid.h"
#include "train/checkpointing.h"
#include "train/lr_schedule.h"
#include "train/pipeline_scorer.h"
#include "train/pipeline_trainer.h"

namespace spin::app {

namespace {

namespace po = boost::program_options;

struct SftOptions {
  std::string model, adapter, train, output;
  std::string prompt_template = "auto", overlong = "drop", columns;
  std::int64_t max_prompt_tokens = 0, max_response_tokens = 0;
  bool skip_bad_lines = false;
  int tp = 1, pp = 1, ep = 1, vpp = 1;
  std::string pp_layers;
  std::int64_t global_batch = 8, micro_batch = 1, micro_batch_tokens = 0, epochs = 1, max_steps = 0;
  double lr = 1e-5, min_lr = 0.0;
  std::string schedule = "constant";
  std::int64_t warmup_steps = 0, decay_steps = 0, constant_steps = 0, wsd_decay_steps = 0;
  std::string wsd_decay_style = "exponential";
  std::string optimizer = "adamw";
  float weight_decay = 0.0f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, alpha = 0.99f;
  bool no_decay_embeddings = false;
  double clip_grad = 1.0;
  bool distributed_optimizer = false;
  bool overwrite = false;
  bool overlap_grad_reduce = false;
  bool no_overlap_p2p_comm = false;
  bool recompute_activations = false;
  std::int64_t recompute_num_layers = 0;
  bool sequence_parallel = false;
  std::int64_t logits_chunk_rows = 0;
  std::int64_t lora_rank = 0;
  std::string frozen_dtype = "auto";
  double router_bias_update_rate = 0.0;
  double lora_alpha = 16.0;
  bool lora_rslora = false;
  double lora_dropout = 0.0;
  std::string lora_targets = "all-linear";
  int max_nonfinite = 10;
  std::int64_t seed = 1234;  // signed: "-1" is refused, not wrapped to 2^64 - 1
  bool no_shuffle = false;
  std::int64_t log_interval = 1;
  std::string validation;          // validation data (empty: none)
  std::string metrics;             // metrics.jsonl to write (empty: none)
  std::string tensorboard;         // TensorBoard event directory (empty: none)
  std::int64_t eval_interval = 0;  // steps between validations (0: after the last step alone)
  std::int64_t profile_step_start = 0, profile_step_end = 0;
  std::string save_dtype = "f32";
  std::int64_t save_max_shard_bytes = ckpt::kDefaultMaxShardBytes;  // signed: "-1" is refused, not wrapped
  std::string save_dir;
  std::int64_t save_interval = 0;
  int keep_last = 2;
  double exit_duration_mins = 0.0;
  bool resume = false;
  RuntimeOptions runtime;  // --device, --precision, --attention-backend
};

// The optimizer's options, checked.
train::OptimizerConfig optimizer_settings(const SftOptions& o) {
  train::OptimizerConfig oc;
  oc.algorithm = train::parse_optimizer_algorithm(o.optimizer, "spin sft: --optimizer");
  oc.alpha = o.alpha;
  oc.beta1 = o.beta1;
  oc.beta2 = o.beta2;
  oc.eps = o.eps;
  oc.weight_decay = o.weight_decay;
  oc.decay_embeddings = !o.no_decay_embeddings;
  oc.clip_grad = o.clip_grad;
  oc.distributed = o.distributed_optimizer;
  oc.overlap_grad_reduce = o.overlap_grad_reduce;
  oc.max_nonfinite_in_a_row = o.max_nonfinite;
  oc.validate({.alpha = "spin sft: --rmsprop-alpha",
               .betas = "spin sft: --adam-beta1 and --adam-beta2",
               .eps = "spin sft: --adam-eps",
               .weight_decay = "spin sft: --weight-decay",
               .clip_grad = "spin sft: --clip-grad",
               .max_nonfinite = "spin sft: --max-nonfinite-steps"});
  return oc;
}

std::optional<SftOptions> parse_options(int argc, char** argv, bool print) {
  SftOptions o;
  po::options_description desc("spin sft options");
  desc.add_options()
      ("help,h", "print this help")
      ("model", po::value(&o.model)->required(),
       "Hugging Face model directory to start from, or a spin checkpoint (a step directory, or a run's save "
       "directory: its latest) whose policy it starts from")
      ("adapter", po::value(&o.adapter)->default_value(""),
       "a PEFT LoRA adapter directory trained on --model's model, merged into it at the start")
      ("train", po::value(&o.train)->required(),
       "JSONL, JSON array or Parquet: {\"prompt\", \"response\"} text or token ids, chat messages or NeMo or ShareGPT "
       "conversations")
      ("template", po::value(&o.prompt_template)->default_value(o.prompt_template), spin::cat("prompt template for text: ", data::kPromptTemplateChoices).c_str())
      ("columns", po::value(&o.columns), data::kColumnsHelp)
      ("max-prompt-tokens", po::value(&o.max_prompt_tokens)->default_value(0), "longest prompt (0: no limit)")
      ("max-response-tokens", po::value(&o.max_response_tokens)->default_value(0), "longest response (0: no limit)")
      ("overlong", po::value(&o.overlong)->default_value(o.overlong), "longer samples: drop or truncate")
      ("skip-bad-lines", po::bool_switch(&o.skip_bad_lines), "count and skip malformed records (JSONL lines, Parquet rows)")
      ("output", po::value(&o.output)->required(),
       "directory for the trained weights (config.json + model.safetensors)")
      ("overwrite", po::bool_switch(&o.overwrite), "replace an existing --output")
      ("tp", po::value(&o.tp)->default_value(o.tp), "tensor-parallel size")
      ("pp", po::value(&o.pp)->default_value(o.pp), "pipeline-parallel size (data-parallel = world / (tp x pp))")
      ("ep", po::value(&o.ep)->default_value(o.ep), kExpertParallelHelp)
      ("vpp", po::value(&o.vpp)->default_value(o.vpp),
       "model chunks a pipeline stage holds: the interleaved 1F1B schedule over pp x vpp virtual stages, stage s "
       "running chunks s, s + pp, ... (Megatron's --num-virtual-stages-per-pipeline-rank; 1: 1F1B). A step "
       "needs at least pp micro-batches, in groups of pp where they divide, else of the fewest more whose last "
       "group still holds pp (cut by tokens, they are split to at least pp, whole groups where the sequences a step "
       "are)")
      ("pp-layers", po::value(&o.pp_layers)->default_value(""),
       "layers per pipeline stage, e.g. 3,5 (default: even split); with --vpp, per virtual stage in model order; "
       "balanced: the stages' training FLOPs at --max-prompt-tokens + --max-response-tokens evened out, the LM "
       "head's on the last")
      ("global-batch-size", po::value(&o.global_batch)->default_value(o.global_batch),
       "sequences per optimizer step, over all data-parallel ranks")
      ("micro-batch-size", po::value(&o.micro_batch)->default_value(o.micro_batch),
       "sequences per micro-batch (global = micro x micro-batches x data-parallel)")
      ("micro-batch-tokens", po::value(&o.micro_batch_tokens)->default_value(o.micro_batch_tokens),
       "micro-batches of at most this many tokens as well, a longer sequence alone (NeMo-RL's dynamic batching); "
       "--micro-batch-size then caps the sequences (0: --micro-batch-size sequences alone)")
      ("epochs", po::value(&o.epochs)->default_value(o.epochs), "passes over the data")
      ("max-steps", po::value(&o.max_steps)->default_value(o.max_steps), "stop after this many steps (0: no cap)")
      ("lr", po::value(&o.lr)->default_value(o.lr), "peak learning rate")
      ("min-lr", po::value(&o.min_lr)->default_value(o.min_lr), "learning rate at the end of the decay")
      ("lr-schedule", po::value(&o.schedule)->default_value(o.schedule),
       "constant, linear, cosine, wsd (warmup-stable-decay) or nemo-cosine")
      ("warmup-steps", po::value(&o.warmup_steps)->default_value(o.warmup_steps), "linear warm-up steps")
      ("lr-decay-steps", po::value(&o.decay_steps)->default_value(o.decay_steps),
       "linear/cosine: step at which min-lr is reached (0: the last step)")
      ("constant-steps", po::value(&o.constant_steps)->default_value(o.constant_steps),
       "nemo-cosine: steps held at min-lr at the end")
      ("wsd-decay-steps", po::value(&o.wsd_decay_steps)->default_value(o.wsd_decay_steps),
       "wsd: the anneal's steps, ending at the decay's end (Megatron's --lr-wsd-decay-iters)")
      ("wsd-decay-style", po::value(&o.wsd_decay_style)->default_value(o.wsd_decay_style),
       "wsd: linear, cosine, exponential or minus_sqrt")
      ("optimizer", po::value(&o.optimizer)->default_value(o.optimizer),
       "adamw (torch.optim.AdamW) or rmsprop (torch.optim.RMSprop, not centered, no momentum)")
      ("weight-decay", po::value(&o.weight_decay)->default_value(o.weight_decay),
       "weight decay, never on norms: AdamW's decoupled, RMSprop's L2 (as PyTorch's)")
      ("no-decay-embeddings", po::bool_switch(&o.no_decay_embeddings), "no weight decay on the embedding and LM head")
      ("adam-beta1", po::value(&o.beta1)->default_value(o.beta1), "AdamW beta1")
      ("adam-beta2", po::value(&o.beta2)->default_value(o.beta2), "AdamW beta2")
      ("adam-eps", po::value(&o.eps)->default_value(o.eps), "AdamW's (and RMSprop's) epsilon")
      ("rmsprop-alpha", po::value(&o.alpha)->default_value(o.alpha), "RMSprop's smoothing constant")
      ("clip-grad", po::value(&o.clip_grad)->default_value(o.clip_grad), "max global gradient L2 norm (0: off)")
      ("recompute-activations", po::bool_switch(&o.recompute_activations),
       "keep only each layer's input for the backward and recompute the rest (one more forward)")
      ("recompute-num-layers", po::value(&o.recompute_num_layers)->default_value(o.recompute_num_layers),
       "with --recompute-activations: only each pipeline stage's first this many layers (0: every layer)")
      ("logits-chunk-rows", po::value(&o.logits_chunk_rows)->default_value(o.logits_chunk_rows),
       "the LM head's logits this many rows at a time, again in the backward (0: all at once)")
      ("sequence-parallel", po::bool_switch(&o.sequence_parallel),
       "split the residual stream's rows over the tensor-parallel ranks (1/tp of its activations)")
      ("no-overlap-p2p-comm", po::bool_switch(&o.no_overlap_p2p_comm),
       "with --vpp: wait for each exchange between stages at once instead of overlapping the transfers with the "
       "computations (parallel.overlap_p2p_comm)")
      ("overlap-grad-reduce", po::bool_switch(&o.overlap_grad_reduce),
       "start each layer's DP gradient all-reduce as soon as the backward is done with it")
      ("distributed-optimizer", po::bool_switch(&o.distributed_optimizer),
       "shard AdamW state over data-parallel ranks (ZeRO-1)")
      ("max-nonfinite-steps", po::value(&o.max_nonfinite)->default_value(o.max_nonfinite),
       "stop after this many consecutive steps with a non-finite loss or gradient")
      ("router-bias-update-rate", po::value(&o.router_bias_update_rate)->default_value(o.router_bias_update_rate),
       "a sigmoid router (GLM-4.5, dots.llm1): each step its correction bias moves this much toward the step's load "
       "balance (DeepSeek-V3's auxiliary-loss-free balancing; Megatron's --moe-router-bias-update-rate; 0: kept)")
      ("lora-rank", po::value(&o.lora_rank)->default_value(o.lora_rank),
       "train LoRA adapters of this rank on the frozen model, merged into it in the output (0: full fine-tuning)")
      ("frozen-dtype", po::value(&o.frozen_dtype)->default_value(o.frozen_dtype),
       "with --lora-rank and --precision bf16, how the frozen model is held (spin train's model.frozen_dtype): bf16 "
       "(its matrices in bf16 alone, 2 bytes a parameter instead of 6; the output's merge rounded to bf16) or "
       "fp32 / auto (float32 values with a bf16 copy)")
      ("lora-alpha", po::value(&o.lora_alpha)->default_value(o.lora_alpha), "LoRA's alpha (scale alpha / rank)")
      ("lora-rslora", po::bool_switch(&o.lora_rslora), "rank-stabilised LoRA: the scale alpha / sqrt(rank)")
      ("lora-dropout", po::value(&o.lora_dropout)->default_value(o.lora_dropout),
       "dropout of each adapter's input (PEFT's lora_dropout), keyed by sample, position and feature")
      ("lora-targets", po::value(&o.lora_targets)->default_value(o.lora_targets),
       "the adapted projections: all-linear, or a list of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, "
       "down_proj (or NeMo's attention_qkv, attention_dense, mlp_fc1, mlp_fc2)")
      ("seed", po::value(&o.seed)->default_value(o.seed), "data order seed")
      ("no-shuffle", po::bool_switch(&o.no_shuffle), "visit the data in file order every epoch")
      ("log-interval", po::value(&o.log_interval)->default_value(o.log_interval), "steps between log lines")
      ("validation", po::value(&o.validation)->default_value(""),
       "validation data, in any --train shape (read as --train is): its loss -- the mean NLL per response token, "
       "the training loss's measure -- after the last step and every --eval-interval steps")
      ("eval-interval", po::value(&o.eval_interval)->default_value(o.eval_interval),
       "steps between validations (Megatron's --eval-interval; 0: after the last step alone)")
      ("metrics", po::value(&o.metrics)->default_value(""),
       "write every step's and validation's figures to this JSONL file, a line each (rank 0; a --resume run keeps "
       "the lines up to its step)")
      ("tensorboard", po::value(&o.tensorboard)->default_value(""),
       "write the same figures as TensorBoard scalars (train/loss, train/lr, ..., validation/loss) to an event file "
       "in this directory (rank 0)")
      ("profile-step-start", po::value(&o.profile_step_start)->default_value(0),
       "profile steps start..end (0: none): every rank's ranges to <output>.profile/rank<r>.json, a Chrome trace (NVTX "
       "and cudaProfilerStart/Stop on GPUs)")
      ("profile-step-end", po::value(&o.profile_step_end)->default_value(0), "the last profiled step (default: the first)")
      ("save-dtype", po::value(&o.save_dtype)->default_value(o.save_dtype),
       "f32, bf16, f16, or fp8 (the layers' projections block-scaled to FP8 in 128 x 128 blocks, the rest bf16)")
      ("save-max-shard-size", po::value(&o.save_max_shard_bytes)->default_value(o.save_max_shard_bytes),
       "largest safetensors file written, in bytes (more: model-0000k-of-0000n files with an index, which the "
       "data-parallel replicas write in parallel)")
      ("save-dir", po::value(&o.save_dir)->default_value(o.save_dir),
       "directory for sharded checkpoints (policy and AdamW state): every --save-interval steps and when SIGTERM / "
       "SIGUSR1 stops the run (exit 75); none without it")
      ("save-interval", po::value(&o.save_interval)->default_value(o.save_interval),
       "steps between checkpoints (0: only when stopped)")
      ("keep-last", po::value(&o.keep_last)->default_value(o.keep_last), "checkpoints kept (0: all)")
      ("exit-duration-mins", po::value(&o.exit_duration_mins)->default_value(o.exit_duration_mins),
       "minutes after which the run saves a checkpoint at the next step boundary and exits 75, as for SIGTERM / "
       "SIGUSR1 (Megatron's --exit-duration-in-mins; 0: no limit; needs --save-dir)")
      ("resume", po::bool_switch(&o.resume),
       "go on from <save-dir>/latest when there is one (from --model otherwise)");
  o.runtime.add_to(desc);
  if (!parse_options_or_help(desc, argc, argv, "spin sft",
                             "spin sft --model DIR --train DATA --output DIR [options]", print)) {
    return std::nullopt;
  }
  data::RecordColumns::parse(o.columns, "--columns");  // well-formed
  require(o.epochs >= 1, "spin sft: --epochs must be at least 1");
  require(o.micro_batch_tokens >= 0, "spin sft: --micro-batch-tokens must not be negative");
  require(o.logits_chunk_rows >= 0, "spin sft: --logits-chunk-rows must be 0 (off) or positive");
  require(o.recompute_num_layers >= 0 && (o.recompute_num_layers == 0 || o.recompute_activations),
          "spin sft: --recompute-num-layers must be 0 (every layer) or positive, with --recompute-activations");
  require(o.max_steps >= 0, "spin sft: --max-steps must not be negative");
  require(o.log_interval >= 1, "spin sft: --log-interval must be at least 1");
  require(o.eval_interval >= 0, "spin sft: --eval-interval must not be negative");
  require(o.eval_interval == 0 || !o.validation.empty(), "spin sft: --eval-interval needs --validation");
  require(o.save_interval >= 0, "spin sft: --save-interval must not be negative");
  require(o.keep_last >= 0, "spin sft: --keep-last must not be negative");
  optimizer_settings(o);  // a known optimizer and its settings in bounds, before any work
  require(o.seed >= 0, "spin sft: --seed must not be negative, got ", o.seed);
  require(o.max_prompt_tokens >= 0 && o.max_response_tokens >= 0,
          "spin sft: --max-prompt-tokens and --max-response-tokens must not be negative (0: no limit)");
  require(!o.save_dir.empty() || (o.save_interval == 0 && !o.resume && o.exit_duration_mins == 0.0),
          "spin sft: --save-interval, --exit-duration-mins and --resume need --save-dir");
  set_time_limit(o.exit_duration_mins, "spin sft: --exit-duration-mins");
  o.runtime.check();
  check_frozen_dtype(o.frozen_dtype, "spin sft: --frozen-dtype");
  o.output = through_links(o.output);  // a link to the output directory: its target replaced, the link kept
  return o;
}

// On rank 0, before training: --output is written as <output>.tmp and renamed over <output> at the end -- what
// it would replace, and whether it can be written at all, are known before any work.
void check_outputs(const SftOptions& o) {
  const std::filesystem::path parent = std::filesystem::absolute(o.output).parent_path();
  require(std::filesystem::is_directory(parent), o.output, ": the parent directory ", parent.string(),
          " does not exist");
  require_replaceable_output(o.output, o.overwrite, "spin sft: --output");
  if (!o.save_dir.empty()) {
    const auto normal = [](const std::string& p) { return std::filesystem::absolute(p).lexically_normal() / ""; };
    const std::string out = normal(o.output).string(), save = normal(o.save_dir).string();
    require(!save.starts_with(out), "spin sft: --save-dir ", o.save_dir, " is --output ", o.output,
            " or inside it, which the output replaces at the end: give them separate paths");
  }
  require_creatable_dir(o.output + ".tmp", "--output", false);
  if (!o.save_dir.empty()) require_creatable_dir(o.save_dir, "--save-dir", true);
}

// A step's batch: this replica's micro-batches -- the plan's, or, by tokens, cut again -- and the counts of the
// whole global batch (its response tokens normalise the loss; its sequences' lengths give its model FLOPs).
struct StepBatch {
  std::vector<model::TokenBatch> micro_batches;
  std::int64_t response_tokens = 0, tokens = 0;
  std::vector<std::int64_t> lengths;
};

StepBatch step_batch(const SftOptions& o, const data::BatchPlan& plan, const std::vector<data::Example>& examples,
                     const parallel::ProcessGrid& grid, std::int64_t step) {
  const std::int64_t epoch = step / plan.batches_per_epoch();
  const std::int64_t index = step % plan.batches_per_epoch();
  StepBatch batch;
  for (std::int64_t i : plan.global_batch(epoch, index)) {
    const data::Example& e = examples[static_cast<std::size_t>(i)];
    batch.response_tokens += static_cast<std::int64_t>(e.response.size());
    batch.lengths.push_back(static_cast<std::int64_t>(e.prompt.size() + e.response.size()));
    batch.tokens += batch.lengths.back();
  }
  std::vector<std::int64_t> share, sequence_tokens;
  for (const auto& ids : plan.micro_batches(epoch, index, grid.dp_rank())) {
    for (std::int64_t i : ids) {
      const data::Example& e = examples[static_cast<std::size_t>(i)];
      share.push_back(i);
      sequence_tokens.push_back(static_cast<std::int64_t>(e.prompt.size() + e.response.size()));
    }
  }
  for (const auto& ids : data::cut_micro_batches(share, sequence_tokens, o.micro_batch, o.micro_batch_tokens,
                                                 o.vpp > 1 ? grid.pp_size() : 1)) {
    std::vector<model::Sequence> seqs;
    for (std::int64_t i : ids) {
      const data::Example& e = examples[static_cast<std::size_t>(i)];
      std::vector<std::int32_t> tokens_of = e.prompt;
      tokens_of.insert(tokens_of.end(), e.response.begin(), e.response.end());
      seqs.push_back({tokens_of, static_cast<std::int64_t>(e.prompt.size()), 0, i});  // i keys its dropout
    }
    batch.micro_batches.push_back(model::TokenBatch::pack(seqs));
    batch.micro_batches.back().dropout_seed =
        model::TokenBatch::step_dropout_seed(static_cast<std::uint64_t>(o.seed), static_cast<std::uint64_t>(step));
  }
  return batch;
}

}  // namespace

int run_sft(int argc, char** argv, parallel::Communicator& world) {
  const auto parsed = parse_command<SftOptions>(
      world, [&](bool print) { return parse_options(argc, argv, print); });
  if (!parsed) return 0;
  const SftOptions& o = parsed->first;
  const parallel::Layout layout = parsed->second;
  const bool root = world.rank() == 0;
  const auto start = std::chrono::steady_clock::now();
  const Runtime runtime(o.runtime, world);
  const parallel::ProcessGrid grid(runtime.world(), layout);

  // ---- everything that can be wrong with the input, before any work -------------------------
  std::optional<ModelSource> source;
  std::optional<ModelShard> shard;
  std::optional<data::BatchPlan> plan;
  data::LoadedExamples data, validation;
  train::LrSchedule schedule;
  std::int64_t total_steps = 0;
  ckpt::HfFormat save_format;
  std::optional<ProfileWindow> profile_window;
  model::LoraConfig lora;
  parallel::run_collectively(world, [&] {
    profile_window.emplace(o.profile_step_start, o.profile_step_end, o.output + ".profile", world.rank(),
                           "--profile-step-start", "--profile-step-end");
    source = model_source(o.model, o.adapter, world.rank() == 0);
    shard = plan_model_shard(source->config, grid, o.pp_layers, o.vpp,
                             balance_tokens(source->config, o.max_prompt_tokens, o.max_response_tokens));
    lora = lora_settings(o.lora_rank, o.lora_alpha, o.lora_rslora, o.lora_dropout, o.lora_targets, "spin sft: --lora-",
                         shard->config);
    if (!o.adapter.empty()) lora_from_peft_config(o.adapter);  // refused before any work
    set_router_bias_update_rate(shard->config, o.router_bias_update_rate, o.lora_rank,
                                "spin sft: --router-bias-update-rate", o.model);
    require(o.save_max_shard_bytes > 0, "spin sft: --save-max-shard-size must be positive, got ",
            o.save_max_shard_bytes);
    save_format = hf_format(o.save_dtype, "spin sft: --save-dtype", shard->config,
                            static_cast<std::uint64_t>(o.save_max_shard_bytes));
    const auto tokenizer = load_tokenizer(source->dir, shard->config);
    require(o.overlong == "drop" || o.overlong == "truncate", "spin sft: --overlong \"", o.overlong,
            "\" is not drop or truncate");
    const data::LengthLimits limits{o.max_prompt_tokens, o.max_response_tokens,
                                    shard->config.max_sequence_length(),
                                    o.overlong == "drop" ? data::Overlong::Drop : data::Overlong::Truncate};
    const data::ExampleOptions reading{.skip_bad_lines = o.skip_bad_lines,
                                       .columns = data::RecordColumns::parse(o.columns, "--columns")};
    const data::PromptTemplate tmpl = data::choose_prompt_template(o.prompt_template, tokenizer.get());
    data = data::load_examples(o.train, tokenizer.get(), tmpl, limits, shard->config.vocab_size, reading);
    if (!o.validation.empty()) {
      validation = data::load_examples(o.validation, tokenizer.get(), tmpl, limits, shard->config.vocab_size, reading);
    }
    // Said here with what was read (the batch plan's own error knows neither the file nor what was left out).
    require(o.global_batch <= static_cast<std::int64_t>(data.examples.size()), "spin sft: --global-batch-size ",
            o.global_batch, " exceeds the ", data.examples.size(), " examples of the training data (",
            data.report.summary(o.train), ")");
    plan.emplace(static_cast<std::int64_t>(data.examples.size()), o.global_batch, o.micro_batch, grid.dp_size(),
                 static_cast<std::uint64_t>(o.seed), !o.no_shuffle);
    // Cut by tokens, a replica's micro-batches are split to reach pp (data::cut_micro_batches), which its
    // sequences must allow.
    check_interleaved_step("spin sft: --vpp", o.vpp, grid.pp_size(),
                           o.micro_batch_tokens > 0 ? o.global_batch / grid.dp_size() : plan->micro_batches_per_step(),
                           o.micro_batch_tokens > 0,
                           o.micro_batch_tokens > 0 ? "--global-batch-size / data-parallel size"
                                                    : "--global-batch-size / (--micro-batch-size x data-parallel size)");
    total_steps = o.epochs * plan->batches_per_epoch();
    if (o.max_steps > 0) total_steps = std::min(total_steps, o.max_steps);
    require(o.decay_steps >= 0, "spin sft: --lr-decay-steps must not be negative (0: the last step), got ",
            o.decay_steps);
    schedule = {train::parse_lr_decay(o.schedule), o.lr, o.min_lr, o.warmup_steps,
                o.decay_steps > 0 ? o.decay_steps : total_steps, o.constant_steps, total_steps};
    schedule.wsd_decay_steps = o.wsd_decay_steps;
    schedule.wsd_decay = train::parse_wsd_decay(o.wsd_decay_style);
    schedule.validate();
    if (root) check_outputs(o);
  });

  const model::ModelConfig& config = shard->config;
  const std::int64_t pad = o.distributed_optimizer ? grid.dp_size() : 1;
  // --lora-rank: the model frozen (--frozen-dtype bf16: in bf16 alone), LoRA adapters trained (their
  // gradients and optimizer state); the output is the model with them merged.
  model::ModelWeights weights(config, shard->dims, shard->chunks, pad, runtime.device(),
                              lora.enabled() ? frozen_storage(o.frozen_dtype, runtime.precision() == MatmulPrecision::Bf16,
                                                              true)
                                             : model::WeightStorage::Float32);
  std::optional<model::ModelWeights> adapters;
  if (lora.enabled()) {
    adapters.emplace(model::ModelWeights::adapters(config, lora, shard->dims, shard->chunks, pad, runtime.device()));
  }
  model::ModelWeights grads =
      adapters ? model::ModelWeights::adapters(config, lora, shard->dims, shard->chunks, pad, runtime.device())
               : model::ModelWeights(config, shard->dims, shard->chunks, pad, runtime.device());
  model::ModelWeights& trained = adapters ? *adapters : weights;
  const kernels::Kernels& k = runtime.kernels();
  // One Transformer a model chunk of the stage (one without --vpp).
  model::StageTransformers transformers(config, shard->dims, shard->chunks, grid.tp(), k);
  transformers.set_recompute_activations(o.recompute_activations, o.recompute_num_layers);
  transformers.set_sequence_parallel(o.sequence_parallel);
  transformers.set_logits_chunk_rows(o.logits_chunk_rows);
  const model::TransformerChunks& chunks = transformers.chunks();
  train::Optimizer optimizer(optimizer_settings(o), grid, trained, grads, k);
  train::PipelineTrainer trainer(grid, chunks, weights, grads, optimizer, adapters ? &*adapters : nullptr);
  trainer.set_overlap_p2p_comm(!o.no_overlap_p2p_comm);

  // The weights and AdamW state: the newest checkpoint of --save-dir under --resume, else
  // --model's weights.
  std::string loaded;
  std::int64_t first_step = 0;
  parallel::run_collectively(world, [&] {
    loaded = o.resume ? ckpt::latest_checkpoint(o.save_dir) : "";
    if (!o.save_dir.empty()) {
      const std::string earlier = ckpt::earlier_run_in(o.save_dir, loaded);
      require(earlier.empty(), "--save-dir ", o.save_dir, " holds an earlier run's checkpoints (latest: ", earlier,
              "), which this run would write over: pass --resume to continue that run, or choose another --save-dir");
    }
    if (loaded.empty()) {
      load_model_weights(*source, o.adapter, *shard, weights, runtime.kernels());
      if (adapters) adapters->init_random(static_cast<std::uint64_t>(o.seed), 0.0f);
      return;
    }
    const ckpt::CheckpointReader reader(loaded);
    require(reader.has_attribute("sft_state"), loaded, ": not a spin sft checkpoint (it has no sft_state)");
    const nlohmann::json state = nlohmann::json::parse(reader.attribute("sft_state"), nullptr, false);
    require(state.is_object() && state.contains("step") && state.contains("global_batch_size") &&
                state.contains("steps_per_epoch") && state.contains("optimizer_steps") &&
                state.contains("optimizer_skipped"),
            loaded, ": malformed sft_state");
    for (const auto& [key, ours, what] : {std::tuple{"global_batch_size", o.global_batch, "sequences per step"},
                                          std::tuple{"steps_per_epoch", plan->batches_per_epoch(),
                                                     "steps per epoch (the data or batch size differ)"}}) {
      const auto theirs = state.at(key).get<std::int64_t>();
      require(theirs == ours, loaded, " was saved by a run with ", theirs, " ", what, "; this run has ", ours,
              ": its position in the data cannot be carried over");
    }
    require_same_lora(state.value("lora", ""), lora, loaded);
    // LoRA: the frozen model (group "base"; "policy" holds it with the adapters merged) and the adapters.
    train::load_weights(reader, adapters ? "base" : "policy", weights);
    if (adapters) train::load_weights(reader, "lora", *adapters);
    optimizer.load_state(reader, state.at("optimizer_steps").get<std::int64_t>(),
                         state.at("optimizer_skipped").get<std::int64_t>());
    first_step = state.at("step").get<std::int64_t>();
  });
  runtime.prepare(weights);  // after loading: the bf16 copies are made from the loaded values
  if (adapters) runtime.prepare(*adapters);
  const auto save = [&](std::int64_t step) {
    const nlohmann::json sft_state = {{"step", step}, {"global_batch_size", o.global_batch},
                                      {"steps_per_epoch", plan->batches_per_epoch()},
                                      {"optimizer_steps", optimizer.steps_taken()},
                                      {"optimizer_skipped", optimizer.steps_skipped()}, {"seed", o.seed},
                                      {"shuffle", !o.no_shuffle}, {"lora", lora.summary()}};
    const nlohmann::json layout_json = {{"tp", grid.tp_size()}, {"pp", grid.pp_size()},
                                        {"vpp", o.vpp},         {"dp", grid.dp_size()},
                                        {"ep", o.ep},           {"distributed_optimizer", o.distributed_optimizer}};
    // LoRA: "policy" the merged model (what spin train --checkpoint.load and export-hf read),
    // "base" the frozen one and "lora" the adapters (what --resume reads).
    std::optional<train::AdapterCheckpoint> lora_part;
    std::vector<ckpt::PieceWrite> extra;
    Tensor weights_host;
    std::map<std::string, std::string> attributes = {
        {"sft_state", sft_state.dump()}, {"model_config", config.json_text}, {"layout", layout_json.dump()}};
    if (adapters) {
      lora_part.emplace(grid, config, shard->dims, shard->chunks, pad, weights, *adapters);
      if (grid.dp_rank() == 0) {
        weights_host = weights.values_on_host();
        extra = train::weight_pieces("base", weights, weights_host);
      }
      extra.insert(extra.end(), lora_part->pieces.begin(), lora_part->pieces.end());
      attributes["lora_config"] = lora_config_json(lora);
    }
    train::save_checkpoint(o.save_dir, step, grid, lora_part ? lora_part->policy_or(weights) : weights, nullptr,
                           &optimizer, o.distributed_optimizer, attributes, o.keep_last, tokenizer_files(source->dir),
                           extra);
    if (root) {
      std::printf("spin sft: saved checkpoint %s\n", ckpt::checkpoint_dir(o.save_dir, step).c_str());
      std::fflush(stdout);
    }
  };
  if (!o.save_dir.empty()) install_stop_handlers();
  std::optional<SftMetricsLog> metrics;
  if (root) metrics.emplace(o.metrics, o.tensorboard, first_step);

  if (root) {
    std::printf("spin sft: %s\n", data.report.summary(o.train).c_str());
    std::printf("spin sft: %zu samples (%lld left out of each epoch's batches), %lld steps of %lld sequences "
                "(%s%lld micro-batches of %lld%s per data-parallel rank); layout tp %d x pp %d%s x dp %d%s\n",
                data.examples.size(), static_cast<long long>(plan->dropped_per_epoch()),
                static_cast<long long>(total_steps), static_cast<long long>(o.global_batch),
                o.micro_batch_tokens > 0 ? "at least " : "", static_cast<long long>(plan->micro_batches_per_step()),
                static_cast<long long>(o.micro_batch),
                o.micro_batch_tokens > 0 ? cat(" and ", o.micro_batch_tokens, " tokens at most").c_str() : "",
                grid.tp_size(), grid.pp_size(), o.vpp > 1 ? cat(" (", o.vpp, " chunks a stage)").c_str() : "",
                grid.dp_size(), o.distributed_optimizer ? ", distributed optimizer" : "");
    std::fputs(balance_report("spin sft", *shard, o.pp_layers, "--pp-layers").c_str(), stdout);
    if (!loaded.empty()) {
      std::printf("spin sft: loaded %s (step %lld)\n", loaded.c_str(), static_cast<long long>(first_step));
    }
    if (!o.validation.empty()) std::printf("spin sft: validation %s\n", validation.report.summary(o.validation).c_str());
    std::fflush(stdout);
  }

  for (std::int64_t step = first_step; step < total_steps; ++step) {
    if (!o.save_dir.empty() && stop_agreed(world, step > first_step)) {
      save(step);
      if (root) {
        std::printf("spin sft: stopped by %s after step %lld; --resume goes on from the checkpoint\n",
                    stop_reason().c_str(), static_cast<long long>(step));
        std::fflush(stdout);
      }
      return kExitRequeue;
    }
    profile_window->before_step(step + 1);
    std::optional<profile::Range> step_range(std::in_place, "step", "step", step + 1);
    const std::int64_t epoch = step / plan->batches_per_epoch();
    const StepBatch batch = step_batch(o, *plan, data.examples, grid, step);
    train::SftLoss loss(std::max<std::int64_t>(batch.response_tokens, 1));
    const train::StepMetrics m = trainer.step(batch.micro_batches, loss, schedule.at(step));
    if (step == 0) runtime.report_memory("after the first step");
    const double step_tflops = model::training_flops(config, batch.lengths) / m.seconds / world.size() / 1e12;
    if (metrics) metrics->step(epoch + 1, step + 1, m, static_cast<double>(batch.tokens) / m.seconds, step_tflops);
    if (root && ((step + 1) % o.log_interval == 0 || step + 1 == total_steps || !m.applied)) {
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf(
          "step %lld/%lld | epoch %lld | loss %.4f | lr %.3e | grad norm %.4f | "
          "%.0f tokens/s, %.3g TFLOP/s a rank | %.1f s%s\n",
          static_cast<long long>(step + 1), static_cast<long long>(total_steps), static_cast<long long>(epoch + 1),
          m.loss, m.lr, m.grad_norm, static_cast<double>(batch.tokens) / m.seconds, step_tflops, elapsed,
          m.applied ? "" : cat(" | skipped (non-finite; ", m.skipped_total, " in all)").c_str());
      std::fflush(stdout);
    }
    if (!o.validation.empty() &&
        ((o.eval_interval > 0 && (step + 1) % o.eval_interval == 0) || step + 1 == total_steps)) {
      const train::ResponseNll v = train::response_nll(grid, chunks, weights, validation.examples, o.micro_batch,
                                                       o.micro_batch_tokens, adapters ? &*adapters : nullptr);
      if (metrics) metrics->validation(epoch + 1, step + 1, v.mean(), v.tokens);
      if (root) {
        std::printf("validation | step %lld/%lld | loss %.6f | %zu sequences, %.0f response tokens\n",
                    static_cast<long long>(step + 1), static_cast<long long>(total_steps), v.mean(),
                    validation.examples.size(), v.tokens);
        std::fflush(stdout);
      }
    }
    raise_test_stop(world, "signal-after-step", step + 1);
    if (o.save_interval > 0 && (step + 1) % o.save_interval == 0 && step + 1 < total_steps) save(step + 1);
    step_range.reset();
    profile_window->after_step(step + 1);
    profile_window->report("spin sft");
  }
  profile_window->finish();
  profile_window->report("spin sft");

  // The model's files shared by the data-parallel replicas (all hold the same weights); a multimodal
  // --model (Gemma 3, Mistral Small 3.1, Qwen2.5-VL) whole, its language model trained. LoRA: the
  // adapters merged into it first (each rank its shards).
  if (adapters) adapters->merge_into(weights, k);
  ckpt::save_hf_model(o.output, hf_config_json(config, save_format), weights.sharded_state_dict(), grid.mp(),
                      save_format, model::hf_layout(config), source->dir, &grid.dp());
  if (root) copy_tokenizer_files(source->dir, o.output);
  world.barrier();
  if (root) std::printf("spin sft: wrote %s\n", o.output.c_str());
  return 0;
}

}  // namespace spin::app
