// spin plan: per-rank memory of a SPIN run before launching it (train/memory_plan.h).
//   spin plan --model MODEL_DIR|config.json --tp 8 --pp 2 --dp 4 --micro-batch 1 --seq 4096 --gpu-mem 80GiB
// Prints, for each pipeline stage, the policy weights, gradients, master weights, AdamW state
// (plain and distributed), the reference (resident or offloaded), 1F1B activations, reference
// scoring and generation memory, the peak, and whether it fits; then the layouts of --gpus GPUs
// that fit. Exit status 0 when the requested layout fits, 3 when it does not.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <tuple>

#include "app/commands.h"
#include "app/model_setup.h"
#include "app/options.h"
#include "app/runtime.h"
#include "checkpoint/sharded_checkpoint.h"
#include "core/error.h"
#include "generate/generator.h"
#include "model/flops.h"
#include "model/stage.h"
#include "parallel/job_errors.h"
#include "parallel/pipeline_schedule.h"
#include "train/memory_plan.h"
#include "train/optimizer.h"

namespace spin::app {

namespace {

namespace po = boost::program_options;
namespace fs = std::filesystem;

constexpr int kDoesNotFit = 3;

constexpr const char* kUsage =
    "spin plan --model MODEL_DIR|config.json --tp T --pp P --dp D --micro-batch B --seq S --gpu-mem 80GiB\n"
    "Per-rank memory of a SPIN run for each pipeline stage, whether it fits, and the layouts of\n"
    "--gpus GPUs that fit. Exit status 0: the layout fits; 3: it does not.";

struct PlanOptions {
  std::string model, pp_layers, gpu_mem = "80GiB", device = "cuda", attention_backend = "auto", optimizer = "adamw";
  int tp = 1, pp = 1, dp = 1, ep = 1, vpp = 1, gpus = 0, gpus_per_node = 8;
  std::int64_t micro_batch = 1, micro_batch_tokens = 0, seq = 0, prompt = 0, global_batch = 0, rollout_batch = 0,
               rollout_step_tokens = 0;
  std::int64_t logits_chunk_rows = 0, lora_rank = 0, recompute_num_layers = 0;
  double lora_dropout = 0.0;
  std::string lora_targets = "all-linear";
  std::string frozen_dtype = "auto";
  bool distributed = false, ref_offload = false, recompute = false, sequence_parallel = false;
  bool rmsprop = false;  // --optimizer rmsprop: one state buffer instead of AdamW's two
};

std::optional<PlanOptions> parse_options(int argc, char** argv, bool print) {
  PlanOptions o;
  po::options_description desc("spin plan options");
  desc.add_options()
      ("help,h", "print this help")
      ("model", po::value(&o.model)->required(),
       "Hugging Face model directory or its config.json, or a spin checkpoint (its model_config)")
      ("tp", po::value(&o.tp)->default_value(o.tp), "tensor-parallel size")
      ("pp", po::value(&o.pp)->default_value(o.pp), "pipeline-parallel size")
      ("dp", po::value(&o.dp)->default_value(o.dp), "data-parallel size")
      ("ep", po::value(&o.ep)->default_value(o.ep), kExpertParallelHelp)
      ("vpp", po::value(&o.vpp)->default_value(o.vpp),
       "model chunks a pipeline stage holds (parallel.vpp: interleaved 1F1B; at least pp micro-batches a step)")
      ("pp-layers", po::value(&o.pp_layers)->default_value(""),
       "layers per pipeline stage, e.g. 15,17 (with --vpp, per virtual stage), or balanced: the stages' training "
       "FLOPs at --seq evened out, the LM head's on the last (the layouts listed balanced too)")
      ("micro-batch", po::value(&o.micro_batch)->default_value(o.micro_batch),
       "prompts per micro-batch (spin.micro_batch_size; each is 2 sequences: real and generated)")
      ("micro-batch-tokens", po::value(&o.micro_batch_tokens)->default_value(o.micro_batch_tokens),
       "tokens per micro-batch at most (spin.micro_batch_tokens; a longer pair alone; 0: --micro-batch pairs alone)")
      ("seq", po::value(&o.seq)->required(), "tokens per sequence, prompt + response (worst case)")
      ("prompt", po::value(&o.prompt)->default_value(o.prompt),
       "tokens of the longest prompt (data.max_prompt_tokens; 0: seq, the worst case): the most a generation call "
       "feeds a sequence, which sliding-window layers' KV caches keep beside their window")
      ("global-batch", po::value(&o.global_batch)->default_value(o.global_batch),
       "prompts per step (spin.global_batch_size; 0: enough micro-batches to fill the pipeline)")
      ("rollout-batch", po::value(&o.rollout_batch)->default_value(o.rollout_batch),
       "sequences generated at once per replica (spin.rollout_batch_size; 0: the micro-batch)")
      ("rollout-step-tokens", po::value(&o.rollout_step_tokens)->default_value(o.rollout_step_tokens),
       "tokens per generation model call (spin.rollout_step_tokens; 0: no limit)")
      ("distributed-optimizer", po::bool_switch(&o.distributed), "shard the optimizer state over DP (ZeRO-1)")
      ("optimizer", po::value(&o.optimizer)->default_value(o.optimizer),
       "optim.name: adamw (m and v, 8 bytes a parameter) or rmsprop (v, 4 bytes)")
      ("ref-offload", po::bool_switch(&o.ref_offload), "keep the reference weights in host memory")
      ("frozen-dtype", po::value(&o.frozen_dtype)->default_value(o.frozen_dtype),
       "how the reference (LoRA: the base) is held with --device cuda (model.frozen_dtype): bf16 (2 bytes a "
       "parameter, the embedding and vectors 4 more), fp32 (6 bytes) or auto (bf16 without --lora-rank)")
      ("recompute-activations", po::bool_switch(&o.recompute),
       "keep only each layer's input under 1F1B (model.recompute_activations)")
      ("recompute-num-layers", po::value(&o.recompute_num_layers)->default_value(o.recompute_num_layers),
       "with --recompute-activations: only each stage's first this many layers (model.recompute_num_layers; 0: "
       "every layer)")
      ("logits-chunk-rows", po::value(&o.logits_chunk_rows)->default_value(o.logits_chunk_rows),
       "the LM head's logits this many rows at a time (model.logits_chunk_rows; 0: all)")
      ("sequence-parallel", po::bool_switch(&o.sequence_parallel),
       "split the residual stream's rows over the TP ranks (model.sequence_parallel)")
      ("lora-rank", po::value(&o.lora_rank)->default_value(o.lora_rank),
       "LoRA adapters of this rank trained on the frozen reference (lora.rank; 0: full fine-tuning)")
      ("lora-targets", po::value(&o.lora_targets)->default_value(o.lora_targets),
       "the adapted projections (lora.targets)")
      ("lora-dropout", po::value(&o.lora_dropout)->default_value(o.lora_dropout),
       "the adapters' dropout (lora.dropout): its scratch")
      ("gpu-mem", po::value(&o.gpu_mem)->default_value(o.gpu_mem), "memory per GPU, e.g. 80GiB, 141GB")
      ("gpus", po::value(&o.gpus)->default_value(o.gpus), "GPUs to suggest layouts for (0: tp x pp x dp)")
      ("gpus-per-node", po::value(&o.gpus_per_node)->default_value(o.gpus_per_node), "tensor parallelism stays within a node")
      ("device", po::value(&o.device)->default_value(o.device),
       "cuda (bf16 mixed precision, fused attention) or cpu (float32, as the CPU path allocates)")
      ("attention-backend", po::value(&o.attention_backend)->default_value(o.attention_backend),
       "the run's --attention-backend: unfused keeps the attention probabilities on a GPU too");
  if (!parse_options_or_help(desc, argc, argv, "spin plan", kUsage, print)) return std::nullopt;
  require(o.device == "cuda" || o.device == "cpu", "spin plan: --device \"", o.device, "\" is not cuda or cpu");
  parse_attention_backend(o.attention_backend);
  o.rmsprop = train::parse_optimizer_algorithm(o.optimizer, "spin plan: --optimizer") == train::OptimizerAlgorithm::RmsProp;
  require(o.gpus >= 0 && o.gpus_per_node >= 1, "spin plan: --gpus and --gpus-per-node must be positive");
  require(o.logits_chunk_rows >= 0, "spin plan: --logits-chunk-rows must be 0 (off) or positive");
  require(o.seq >= 2, "spin plan: --seq (", o.seq, ") must be at least 2 tokens: a prompt's and a response's");
  require(o.global_batch >= 0 && o.rollout_batch >= 0, "spin plan: --global-batch and --rollout-batch must not be ",
          "negative (0: the default), got ", o.global_batch, " and ", o.rollout_batch);
  // A count whose bytes do not fit in 64 bits was planned as nonsense (a micro-batch of 2^63 - 1 prompts as "-2
  // sequences" that fit): 2^32 tokens a sequence, micro-batch, step or rollout are beyond any GPU's memory.
  constexpr std::int64_t kMaxTokens = std::int64_t{1} << 32;
  require(o.seq <= kMaxTokens, "spin plan: --seq ", o.seq, " is more than 2^32 tokens");
  for (const auto& [name, count, tokens_each] :
       {std::tuple{"--micro-batch", o.micro_batch, 2 * o.seq}, std::tuple{"--global-batch", o.global_batch, 2 * o.seq},
        std::tuple{"--rollout-batch", o.rollout_batch, o.seq},
        std::tuple{"--micro-batch-tokens", o.micro_batch_tokens, std::int64_t{1}},
        std::tuple{"--rollout-step-tokens", o.rollout_step_tokens, std::int64_t{1}}}) {
    require(count <= kMaxTokens / tokens_each, "spin plan: ", name, " ", count, " at --seq ", o.seq,
            " is more than 2^32 tokens, beyond any GPU's memory");
  }
  require(o.prompt >= 0 && o.prompt <= o.seq, "spin plan: --prompt (", o.prompt,
          ") must be in [0, --seq = ", o.seq, "]: a prompt is part of its sequence");
  check_frozen_dtype(o.frozen_dtype, "spin plan: --frozen-dtype");
  require(o.recompute_num_layers >= 0 && (o.recompute_num_layers == 0 || o.recompute),
          "spin plan: --recompute-num-layers must be 0 (every layer) or positive, with --recompute-activations");
  require(o.lora_rank == 0 || !o.ref_offload, "spin plan: --ref-offload with --lora-rank: a LoRA run holds one model, "
          "the reference, and nothing to offload");
  return o;
}

// A Hugging Face directory's or a spin checkpoint's model (model_source), or a config.json file's.
model::ModelConfig load_config(const std::string& path) {
  return fs::is_directory(path) || ckpt::is_checkpoint(path)
             ? model_source(path, "", true).config
             : model::ModelConfig::from_file(path, " (the model's config.json)");
}

// One table row: a label and a figure per stage.
void row(const char* label, const std::vector<train::StagePlan>& stages, std::int64_t train::StagePlan::*field) {
  std::printf("  %-34s", label);
  for (const auto& s : stages) std::printf(" %12s", train::format_bytes(s.*field).c_str());
  std::printf("\n");
}

}  // namespace

int run_plan(int argc, char** argv, parallel::Communicator& world) {
  std::optional<PlanOptions> options;
  train::PlanRequest request;
  train::MemoryPlan plan, other, other_recompute, other_split;
  std::int64_t capacity = 0;
  std::vector<train::LayoutFit> fits;
  parallel::run_collectively(world, [&] {
    options = parse_options(argc, argv, world.rank() == 0);
    if (!options) return;
    const PlanOptions& o = *options;
    capacity = train::parse_bytes(o.gpu_mem);
    require(capacity > 0, "spin plan: --gpu-mem must be positive, got ", o.gpu_mem);
    require(o.tp >= 1 && o.pp >= 1 && o.dp >= 1, "spin plan: --tp, --pp and --dp must be at least 1, got ", o.tp, ", ",
            o.pp, " and ", o.dp);  // first: the checks below divide by them
    request.config = load_config(o.model);
    request.tp = o.tp, request.pp = o.pp, request.dp = o.dp, request.ep = o.ep, request.vpp = o.vpp;
    request.balanced_layers = o.pp_layers == "balanced";
    if (!o.pp_layers.empty() && !request.balanced_layers) {
      request.pp_layers = layers_per_stage(request.config, o.pp, o.vpp, o.pp_layers, o.seq);
    }
    request.micro_batch = o.micro_batch;
    request.micro_batch_tokens = o.micro_batch_tokens;
    request.seq = o.seq;
    request.prompt = o.prompt;
    request.global_batch = o.global_batch;
    request.rollout_batch = o.rollout_batch;
    request.rollout_step_tokens = o.rollout_step_tokens;
    generate::check_step_tokens(o.rollout_step_tokens, o.rollout_batch > 0 ? o.rollout_batch : o.micro_batch, o.pp,
                                "spin plan: --rollout-step-tokens");
    request.distributed_optimizer = o.distributed;
    request.ref_offload = o.ref_offload;
    request.recompute_activations = o.recompute;
    request.recompute_num_layers = o.recompute_num_layers;
    request.sequence_parallel = o.sequence_parallel;
    request.logits_chunk_rows = o.logits_chunk_rows;
    request.lora = lora_settings(o.lora_rank, model::LoraConfig{}.alpha, false, o.lora_dropout, o.lora_targets,
                                 "spin plan: --lora-", request.config);
    request.precision = o.device == "cpu" ? train::Precision::cpu() : train::Precision::cuda();
    request.frozen_bf16 = frozen_storage(o.frozen_dtype, request.precision.bf16_products, request.lora.enabled()) ==
                          model::WeightStorage::FrozenBf16;
    if (o.rmsprop) request.precision.moments = 4;  // v alone
    if (parse_attention_backend(o.attention_backend) == AttentionBackend::Unfused) {
      request.precision.attention_probs = true;
    }
    plan = train::plan_memory(request);
    if (o.dp > 1) {
      train::PlanRequest flipped = request;
      flipped.distributed_optimizer = !o.distributed;
      other = train::plan_memory(flipped);
    }
    train::PlanRequest recomputed = request;
    recomputed.recompute_activations = !o.recompute;
    other_recompute = train::plan_memory(recomputed);
    if (o.tp > 1) {
      train::PlanRequest split = request;
      split.sequence_parallel = !o.sequence_parallel;
      other_split = train::plan_memory(split);
    }
    train::PlanRequest base = request;
    base.pp_layers.clear();
    fits = train::fitting_layouts(base, o.gpus > 0 ? o.gpus : o.tp * o.pp * o.dp, o.gpus_per_node, capacity);
  });
  if (!options) return 0;
  const PlanOptions& o = *options;
  const bool fits_here = plan.peak() <= capacity;
  if (world.rank() != 0) return fits_here ? 0 : kDoesNotFit;

  const model::ModelConfig& c = request.config;
  std::printf("spin plan: %s: %.3f B parameters, %lld layers, hidden %lld, %lld heads (%lld kv), vocab %lld%s\n",
              o.model.c_str(), static_cast<double>(c.num_parameters()) / 1e9, static_cast<long long>(c.num_layers),
              static_cast<long long>(c.hidden_size), static_cast<long long>(c.num_heads),
              static_cast<long long>(c.num_kv_heads), static_cast<long long>(c.vocab_size),
              c.tie_word_embeddings ? ", tied embeddings" : "");
  if (c.moe()) {  // the parameters a token meets, as model/flops.h counts them (the embedding's lookup besides)
    const std::string shared =
        c.shared_expert() ? cat(", a shared expert of ", c.shared_expert_intermediate_size) : std::string();
    const std::string dense = c.first_dense_layers > 0 ? cat(", the first ", c.first_dense_layers,
                                                             " layer(s) dense of ", c.dense_intermediate_size)
                                                       : std::string();
    std::printf("mixture of experts: %lld experts, %lld a token%s%s; %.3f B parameters a token\n",
                static_cast<long long>(c.num_experts), static_cast<long long>(c.experts_per_token), shared.c_str(),
                dense.c_str(), (model::matmul_parameters(c) + static_cast<double>(c.vocab_size * c.hidden_size)) / 1e9);
  }
  std::printf("layout tp %d x pp %d%s x dp %d (%d ranks)%s%s%s; micro-batch %lld prompts (%lld sequences) x %lld "
              "tokens%s, %s%lld micro-batches per step%s, rollout %lld%s; %s\n\n",
              o.tp, o.pp, o.vpp > 1 ? cat(" (", o.vpp, " chunks a stage)").c_str() : "", o.dp, o.tp * o.pp * o.dp,
              o.ep > 1 ? cat(", experts over ep ", o.ep, " (", c.num_experts / o.ep, " a rank)").c_str() : "",
              o.distributed ? ", distributed optimizer" : "",
              o.sequence_parallel && o.tp > 1 ? ", sequence parallel" : "",
              static_cast<long long>(o.micro_batch), static_cast<long long>(2 * o.micro_batch),
              static_cast<long long>(o.seq),
              o.micro_batch_tokens > 0 ? cat(", ", o.micro_batch_tokens, " tokens at most").c_str() : "",
              o.micro_batch_tokens > 0 ? "at least " : "", static_cast<long long>(plan.micro_batches),
              o.vpp > 1 && o.micro_batch_tokens == 0
                  ? cat(" (in groups of ", parallel::interleaved_group(o.pp, static_cast<int>(plan.micro_batches)),
                        ")").c_str()
                  : "",
              static_cast<long long>(o.rollout_batch > 0 ? o.rollout_batch : o.micro_batch),
              o.rollout_step_tokens > 0 ? cat(" (", o.rollout_step_tokens, " tokens per call)").c_str() : "",
              request.precision.name.c_str());
  using S = train::StagePlan;
  std::printf("  %-34s", "per rank, pipeline stage");
  for (const auto& s : plan.stages) std::printf(" %12d", s.stage);
  std::printf("\n  %-34s", "layers");
  for (const auto& s : plan.stages) std::printf(" %12lld", static_cast<long long>(s.layers));
  // Each stage's training work a token (model FLOPs, the head's on the last): what paces the pipeline.
  const std::vector<double> work = model::stage_flops_per_token(c, train::stage_layers(request), o.seq);
  std::printf("\n  %-34s", "training GFLOP a token");
  for (const auto& s : plan.stages) {
    double sum = 0.0;
    for (std::size_t v = static_cast<std::size_t>(s.stage); v < work.size(); v += static_cast<std::size_t>(o.pp)) {
      sum += work[v];
    }
    std::printf(" %12.3f", sum / 1e9);
  }
  std::printf("\n  %-34s", "parameters on the rank");
  for (const auto& s : plan.stages) std::printf(" %11.1fM", static_cast<double>(s.params) / 1e6);
  std::printf("\n");
  if (request.lora.enabled()) {
    std::printf("  %-34s", "of which trained (LoRA adapters)");
    for (const auto& s : plan.stages) std::printf(" %11.2fM", static_cast<double>(s.trained) / 1e6);
    std::printf("\n");
  }
  row(request.lora.enabled() ? "adapter weights" : "policy weights", plan.stages, &S::weights);
  row("gradients", plan.stages, &S::grads);
  row(request.precision.master > 0 ? "master weights (fp32)" : "master weights (= the weights)", plan.stages, &S::masters);
  const std::string state = cat(o.rmsprop ? "RMSprop state" : "AdamW moments",
                                o.distributed ? " (distributed)" : "");
  row(state.c_str(), plan.stages, &S::optimizer);
  row("reference weights", plan.stages, &S::reference);
  row("RoPE tables", plan.stages, &S::rope);
  std::printf("  %-34s", o.vpp > 1 ? "activations (interleaved, in flight)" : "activations (1F1B in flight)");
  for (const auto& s : plan.stages) std::printf(" %12s", cat(s.micro_batches_in_flight, " x ", train::format_bytes(s.activations_per_micro_batch)).c_str());
  std::printf("\n");
  row("  = activations", plan.stages, &S::activations);
  row("reference scoring (transient)", plan.stages, &S::scoring);
  row("generation KV cache (transient)", plan.stages, &S::kv_cache);
  row("generation buffers (transient)", plan.stages, &S::generation);
  std::printf("  %-34s", "peak");
  for (const auto& s : plan.stages) std::printf(" %12s", train::format_bytes(s.peak()).c_str());
  std::printf("\n");
  if (o.ref_offload) row("host: offloaded reference", plan.stages, &S::reference_host);
  std::printf("\npeak %s of %s per GPU: %s\n", train::format_bytes(plan.peak()).c_str(),
              train::format_bytes(capacity).c_str(),
              fits_here ? cat("fits (", train::format_bytes(capacity - plan.peak()), " to spare)").c_str()
                        : cat("DOES NOT FIT (over by ", train::format_bytes(plan.peak() - capacity), ")").c_str());
  // The even split's pace against the balanced one's, where balancing would help.
  if (const std::optional<BalanceHint> hint = o.pp_layers.empty() ? balance_hint(c, o.pp, o.vpp, o.seq)
                                                                    : std::nullopt) {
    std::printf("pipeline balance: the slowest %sstage does %.3f GFLOP a token (the LM head's among them); "
                "--pp-layers balanced (%s) takes it to %.3f (-%.1f%%)\n",
                o.vpp > 1 ? "virtual " : "", hint->even_pace / 1e9, layers_text(hint->balanced).c_str(),
                hint->balanced_pace / 1e9, 100.0 * hint->saving());
  }
  if (!other.stages.empty()) {
    std::printf("with%s the distributed optimizer: peak %s (%s)\n", o.distributed ? "out" : "",
                train::format_bytes(other.peak()).c_str(), other.peak() <= capacity ? "fits" : "does not fit");
  }
  std::printf("with%s activation recomputation: peak %s (%s; activations %s)\n", o.recompute ? "out" : "",
              train::format_bytes(other_recompute.peak()).c_str(),
              other_recompute.peak() <= capacity ? "fits" : "does not fit",
              train::format_bytes(other_recompute.stages.front().activations).c_str());
  if (!other_split.stages.empty()) {
    std::printf("with%s sequence parallelism: peak %s (%s; activations %s)\n", o.sequence_parallel ? "out" : "",
                train::format_bytes(other_split.peak()).c_str(), other_split.peak() <= capacity ? "fits" : "does not fit",
                train::format_bytes(other_split.stages.front().activations).c_str());
  }
  const int gpus = o.gpus > 0 ? o.gpus : o.tp * o.pp * o.dp;
  if (fits.empty()) {
    std::printf("no layout of %d GPUs fits %s at this batch and sequence length\n", gpus, train::format_bytes(capacity).c_str());
  } else {
    std::printf("layouts of %d GPUs that fit %s (fewest model-parallel ranks first%s):\n", gpus,
                train::format_bytes(capacity).c_str(), request.balanced_layers ? ", layers balanced" : "");
    for (std::size_t i = 0; i < fits.size() && i < 8; ++i) {
      const train::LayoutFit& f = fits[i];
      std::printf("  --tp %d --pp %d (dp %d)%s%s%s%s%s%s%s  peak %s\n", f.tp, f.pp, f.dp,
                  f.ep > 1 ? cat(" --ep ", f.ep).c_str() : "",
                  f.distributed_optimizer ? " --distributed-optimizer" : "",
                  f.sequence_parallel ? " --sequence-parallel" : "",
                  f.rollout_step_tokens > 0 ? cat(" --rollout-step-tokens ", f.rollout_step_tokens).c_str() : "",
                  f.frozen_bf16 ? " --frozen-dtype bf16" : "",
                  f.recompute_activations ? " --recompute-activations" : "",
                  f.recompute_num_layers > 0 ? cat(" --recompute-num-layers ", f.recompute_num_layers).c_str() : "",
                  train::format_bytes(f.peak).c_str());
    }
  }
  std::printf("(the cuda figures are what the CUDA path allocates with --precision bf16; --device cpu gives "
              "what the CPU path allocates)\n");
  return fits_here ? 0 : kDoesNotFit;
}

}  // namespace spin::app
