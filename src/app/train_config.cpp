#include "app/train_config.h"

#include <boost/program_options.hpp>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "app/options.h"
#include "app/runtime.h"
#include "core/error.h"
#include "data/examples.h"
#include "data/prompt_template.h"

namespace spin::app {

namespace {

namespace po = boost::program_options;

std::string show(const std::string& v) { return v; }
std::string show(bool v) { return v ? "true" : "false"; }
std::string show(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}
std::string show(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.7g", static_cast<double>(v));
  return buf;
}
template <class T>
std::string show(T v) { return std::to_string(v); }

// Every option once: its dotted name, target, default and help, and how to print it.
class OptionTable {
 public:
  OptionTable() : desc_("spin train options (INI keys: [section] key = value)") {}

  template <class T>
  void add(const char* name, T* target, const char* help) {
    desc_.add_options()(name, po::value(target)->default_value(*target, show(*target)), help);
    printers_.push_back({name, [target] { return show(*target); }});
  }
  void add(const char* name, bool* target, const char* help) {
    desc_.add_options()(name, po::value(target)->default_value(*target, show(*target))->implicit_value(true), help);
    printers_.push_back({name, [target] { return show(*target); }});
  }
  void required(const char* name, std::string* target, const char* help) {
    desc_.add_options()(name, po::value(target), help);
    printers_.push_back({name, [target] { return *target; }});
  }
  po::options_description& desc() { return desc_; }

  std::string ini() const {
    std::map<std::string, std::vector<std::string>> sections;
    std::vector<std::string> order;
    for (const auto& [name, print] : printers_) {
      const std::string section = name.substr(0, name.find('.'));
      if (!sections.count(section)) order.push_back(section);
      sections[section].push_back(name.substr(name.find('.') + 1) + " = " + print());
    }
    std::string out;
    for (const std::string& s : order) {
      out += "[" + s + "]\n";
      for (const std::string& line : sections[s]) out += line + "\n";
      out += "\n";
    }
    return out;
  }

 private:
  po::options_description desc_;
  std::vector<std::pair<std::string, std::function<std::string()>>> printers_;
};

void declare(OptionTable& t, TrainConfig& c) {
  t.required("model.path", &c.model_path,
             "Hugging Face model directory to start from (with its tokenizer), or a spin checkpoint (a spin sft run's: "
             "a step directory, or its save directory's latest) whose policy starts the run");
  t.add("model.adapter", &c.model_adapter,
        "a PEFT LoRA adapter directory trained on model.path's model, merged into it at the start (an SFT model "
        "trained with PEFT); not read when the weights come from a checkpoint");
  t.add("model.precision", &c.precision, "fp32, or bf16 (matrix products in bf16 with fp32 accumulation; fp32 master weights)");
  t.add("model.frozen_dtype", &c.frozen_dtype,
        "with model.precision = bf16, how the frozen model -- the reference; with LoRA the base, which is the "
        "reference -- is held: bf16 (as its forward reads it: the matrices in bf16 alone, 2 bytes a parameter "
        "instead of 6; LoRA's merge at an iteration's end rounded to bf16), fp32 (float32 values with a bf16 copy), "
        "or auto (bf16 for full fine-tuning's reference, where it changes no result; fp32 for LoRA's base)");
  t.add("model.attention_backend", &c.attention_backend, kAttentionBackendHelp);
  t.add("model.recompute_activations", &c.recompute_activations,
        "keep only each layer's input for the backward and recompute the rest (one more forward)");
  t.add("model.recompute_num_layers", &c.recompute_num_layers,
        "with model.recompute_activations: only each pipeline stage's first this many layers (Megatron's "
        "--recompute-method block --recompute-num-layers; 0: every layer)");
  t.add("model.logits_chunk_rows", &c.logits_chunk_rows,
        "the LM head's logits this many rows at a time, again in the backward (0: all at once; for large vocabularies)");
  t.add("model.router_aux_loss_coef", &c.router_aux_loss_coef,
        "a mixture of experts: the router's load-balancing loss coefficient (Megatron's --moe-aux-loss-coeff; 0: not "
        "trained); negative: the model's config.json's (router_aux_loss_coef where output_router_logits is true, else "
        "0)");
  t.add("model.router_z_loss_coef", &c.router_z_loss_coef,
        "a mixture of experts: the router's z-loss coefficient (ST-MoE's; Megatron's --moe-z-loss-coeff; 0: not "
        "trained)");
  t.add("model.router_bias_update_rate", &c.router_bias_update_rate,
        "a sigmoid router (GLM-4.5, dots.llm1): each step its correction bias moves this much toward the step's "
        "load balance (DeepSeek-V3's auxiliary-loss-free balancing; Megatron's --moe-router-bias-update-rate, 1e-3 "
        "there; 0: kept as read)");
  t.add("model.sequence_parallel", &c.sequence_parallel,
        "split the residual stream's rows over the tensor-parallel ranks (Megatron's sequence parallelism)");
  t.required("data.train", &c.train,
             "training JSONL, JSON array or Parquet (text pairs, chat messages, NeMo or ShareGPT conversations, SPIN records, "
             "chosen/rejected, TRL's prompt/completion, Alpaca's instruction/input/output, token ids), or a comma-separated list of such files (or patterns: train_sft-*.parquet), read one after "
             "another");
  t.add("data.validation", &c.validation, "validation JSONL, JSON array or Parquet (same shapes; empty: none)");
  t.add("data.template", &c.prompt_template, spin::cat("prompt template: ", data::kPromptTemplateChoices).c_str());
  t.add("data.columns", &c.columns, data::kColumnsHelp);
  t.add("data.max_prompt_tokens", &c.max_prompt_tokens, "longest prompt (0: the model's context)");
  t.add("data.max_response_tokens", &c.max_response_tokens, "longest ground-truth response (0: no limit)");
  t.add("data.overlong", &c.overlong, "what to do with longer samples: drop or truncate");
  t.add("data.workers", &c.data_workers,
        "threads tokenizing the data at start-up (0: one a CPU this rank may run on -- sched_getaffinity, a Slurm "
        "task's --cpus-per-task --, at most 16); the examples are the same for any number");
  t.add("data.skip_bad_lines", &c.skip_bad_lines, "count and skip malformed records (JSONL lines, Parquet rows) instead of stopping");
  t.add("data.seed", &c.data_seed, "data order seed");
  t.add("data.shuffle", &c.shuffle, "shuffle every epoch");
  t.add("spin.kl_penalty", &c.kl_penalty, "lambda: one value, or a comma list with one per iteration");
  t.add("spin.loss", &c.loss, "the loss of a pair's margin z = lambda (f(real) - f(generated)): sigmoid (-log sigmoid(z), the paper's), hinge (max(0, 1 - z)) or ipo ((z - 1/2)^2 / lambda^2)");
  t.add("spin.label_smoothing", &c.label_smoothing, "sigmoid loss: the share of pairs taken to be mislabelled (conservative DPO; 0: off)");
  t.add("spin.average_log_probs", &c.average_log_probs, "f(x, y) as the mean of the response tokens' log-ratios instead of their sum (NeMo-RL's preference_average_log_probs)");
  t.add("spin.sft_loss_weight", &c.sft_loss_weight, "alpha of an SFT term on the real responses, alpha (-log pi(y_real | x)) a pair (NeMo-Aligner's dpo_sft_loss_weight; 0: off)");
  t.add("spin.max_iterations", &c.iterations, "self-play iterations (the reference becomes the policy after each)");
  t.add("spin.max_epochs", &c.epochs, "epochs per iteration");
  t.add("spin.max_steps", &c.max_steps, "stop once this many steps are done in all (0: run to the end); the LR schedule still spans the whole run (or iteration)");
  t.add("spin.global_batch_size", &c.global_batch_size, "prompts per optimizer step, over all data-parallel ranks");
  t.add("spin.micro_batch_size", &c.micro_batch_size, "prompts (real + generated pairs) per micro-batch");
  t.add("spin.micro_batch_tokens", &c.micro_batch_tokens,
        "micro-batches of at most this many tokens as well (a pair's real and generated sequences; a longer pair "
        "alone), cut once the responses are known -- NeMo-RL's dynamic batching; micro_batch_size then caps the "
        "pairs (0: micro_batch_size pairs alone)");
  t.add("spin.rollout_batch_size", &c.rollout_batch_size, "sequences generated at once on each data-parallel replica (KV cache slots; a finished one's slot takes the next prompt)");
  t.add("spin.rollout_step_tokens", &c.rollout_step_tokens,
        "tokens one generation model call processes at most (0: no limit): prompts are prefilled in chunks of what "
        "the decoding sequences leave, which bounds the generation buffers; at least ceil(rollout_batch_size / pp)");
  t.add("spin.generations", &c.generations,
        "where the generated responses come from: reference (sampled by the reference model every step) or data "
        "(the data's own: \"generated\" of SPIN data sets and token-id records, \"rejected\" of chosen/rejected ones)");
  t.add("spin.ref_logprobs", &c.ref_logprobs, "reference log-probabilities: forward (recomputed) or sampler (from generation)");
  t.add("spin.reuse_generations", &c.reuse_generations,
        "generate each prompt's response once per iteration (the SPIN paper's fixed synthetic data) and reuse it in "
        "the iteration's later epochs; false: a fresh response every epoch");
  t.add("spin.pregenerate", &c.pregenerate,
        "with spin.reuse_generations: generate the iteration's responses all at once before its first step (one "
        "continuous batch per replica, no per-step tail; progress on the log), as the SPIN code does");
  t.add("spin.save_generations", &c.save_generations,
        "with spin.reuse_generations: write each iteration's responses, every prompt's, to "
        "<save_dir>/generations/iteration_<k>.jsonl as token-id SPIN records (spin.generations = data reads them)");
  t.add("spin.mix_previous_iteration", &c.mix_previous_iteration,
        "with spin.reuse_generations: every iteration after the first trains on its reference's responses and on "
        "the previous iteration's (each prompt twice an epoch: twice the steps), as the SPIN code trains iteration t "
        "on the data of t and t-1");
  t.add("spin.cache_ref_logprobs", &c.cache_ref_logprobs,
        "keep each sample's reference log-probability sums for the rest of the iteration (the reference is frozen): "
        "the ground truth's, and the generated response's when it is fixed (spin.reuse_generations, spin.generations = "
        "data); later epochs forward only what is not kept (with spin.max_epochs > 1)");
  t.add("spin.ref_offload", &c.ref_offload, "keep the reference's weights in host memory, swapped into the policy's buffers while it works (saves its device memory on GPU runs)");
  t.add("spin.validation_interval", &c.validation_interval, "steps between validations (0: at the end of each iteration)");
  t.add("spin.validation_examples", &c.validation_examples, "greedy validation generations printed as text");
  t.add("optim.lr", &c.lr, "peak learning rate");
  t.add("optim.min_lr", &c.min_lr, "learning rate at the end of the decay");
  t.add("optim.schedule", &c.lr_schedule, "constant, linear, cosine, wsd (warmup-stable-decay) or nemo-cosine");
  t.add("optim.warmup_steps", &c.warmup_steps, "linear warm-up steps");
  t.add("optim.warmup_ratio", &c.warmup_ratio,
        "warm-up as a share of the schedule's steps, rounded up (Hugging Face's warmup_ratio; instead of warmup_steps)");
  t.add("optim.decay_steps", &c.lr_decay_steps, "linear/cosine: step at which min_lr is reached (0: the last)");
  t.add("optim.constant_steps", &c.constant_steps, "nemo-cosine: steps held at min_lr at the end");
  t.add("optim.wsd_decay_steps", &c.wsd_decay_steps, "wsd: the anneal's steps, ending at decay_steps (Megatron's --lr-wsd-decay-iters)");
  t.add("optim.wsd_decay_ratio", &c.wsd_decay_ratio, "wsd: the anneal as a share of the schedule's steps, rounded up (instead of wsd_decay_steps)");
  t.add("optim.wsd_decay_style", &c.wsd_decay_style, "wsd: linear, cosine, exponential or minus_sqrt (Megatron's --lr-wsd-decay-style)");
  t.add("optim.name", &c.optimizer,
        "adamw (torch.optim.AdamW) or rmsprop (torch.optim.RMSprop, not centered, no momentum: the SPIN code's "
        "optimizer, half the state)");
  t.add("optim.weight_decay", &c.weight_decay,
        "weight decay, never on norms: AdamW's decoupled (p -= lr wd p), RMSprop's L2 (g += wd p), as PyTorch's");
  t.add("optim.decay_embeddings", &c.decay_embeddings, "apply weight decay to the embedding and LM head");
  t.add("optim.beta1", &c.adam_beta1, "AdamW beta1");
  t.add("optim.beta2", &c.adam_beta2, "AdamW beta2");
  t.add("optim.eps", &c.adam_eps, "AdamW's / RMSprop's epsilon");
  t.add("optim.alpha", &c.rmsprop_alpha, "RMSprop's smoothing constant of the squared gradients' average");
  t.add("optim.clip_grad", &c.clip_grad, "max global gradient L2 norm (0: off)");
  t.add("optim.reset_each_iteration", &c.reset_each_iteration,
        "every self-play iteration a training run of its own, as the SPIN code's: the LR schedule (warm-up, decay) "
        "spans one iteration and restarts, AdamW's moments and step count start from zero");
  t.add("optim.distributed_optimizer", &c.distributed_optimizer, "shard AdamW state over data-parallel ranks (ZeRO-1)");
  t.add("optim.overlap_grad_reduce", &c.overlap_grad_reduce,
        "start each layer's DP gradient reduction as soon as the backward is done with it");
  t.add("optim.max_nonfinite_steps", &c.max_nonfinite_steps, "stop after this many non-finite steps in a row");
  t.add("lora.rank", &c.lora_rank,
        "LoRA: train adapters of this rank on the frozen model (0: full fine-tuning); each iteration's adapters are "
        "merged into the reference at its end");
  t.add("lora.alpha", &c.lora_alpha, "LoRA's alpha: the adapters' output scaled by alpha / rank");
  t.add("lora.rslora", &c.lora_rslora, "rank-stabilised LoRA: the scale alpha / sqrt(rank) (PEFT's use_rslora)");
  t.add("lora.dropout", &c.lora_dropout,
        "dropout of each adapter's input in training (PEFT's lora_dropout), its masks keyed by sample, position and "
        "feature: the same under any layout");
  t.add("lora.targets", &c.lora_targets,
        "the adapted projections: all-linear (every one the model has), or a list of q_proj, k_proj, v_proj, "
        "o_proj, gate_proj, up_proj, down_proj, DeepSeek's q_a_proj, q_b_proj, kv_a_proj_with_mqa, kv_b_proj (or "
        "NeMo's attention_qkv, attention_dense, mlp_fc1, mlp_fc2)");
  t.add("parallel.tp", &c.tp, "tensor-parallel size");
  t.add("parallel.pp", &c.pp, "pipeline-parallel size (data-parallel = world / (tp x pp))");
  t.add("parallel.vpp", &c.vpp,
        "model chunks a pipeline stage holds: the interleaved 1F1B schedule over pp x vpp virtual stages, stage s "
        "running chunks s, s + pp, ...; scoring and generation go round the stages once a chunk (Megatron's "
        "--num-virtual-stages-per-pipeline-rank; 1: 1F1B). A step needs at least pp micro-batches, in groups of pp "
        "where they divide, else of the fewest more whose last group still holds pp (cut by tokens, they are "
        "split to at least pp, whole groups where the pairs a step are)");
  t.add("parallel.overlap_p2p_comm", &c.overlap_p2p_comm,
        "with parallel.vpp > 1: each step's transfers between stages posted without waiting and waited for only "
        "before the computation that needs them, so activations travel during a stage's backward and gradients "
        "during its next forward (Megatron's overlap_p2p_comm; on NCCL on a stream of their own); false: each "
        "exchange waited for at once. The same results bitwise either way");
  t.add("parallel.pp_layers", &c.pp_layers,
        "layers per pipeline stage, e.g. 3,5 (empty: even); with parallel.vpp, per virtual stage in model order; "
        "balanced: the stages' training FLOPs at data.max_prompt_tokens + the longer of data.max_response_tokens "
        "and sampling.max_new_tokens evened out, the LM head's on the last");
  t.add("parallel.ep", &c.ep, kExpertParallelHelp);
  t.add("parallel.device", &c.device, "cpu, or cuda (one GPU per rank, by the rank's order on its node)");
  t.add("parallel.distributed_timeout_minutes", &c.distributed_timeout_minutes, kTimeoutHelp);
  t.add("sampling.greedy", &c.greedy, "argmax decoding for the reference's responses");
  t.add("sampling.temperature", &c.temperature, "sampling temperature (> 0)");
  t.add("sampling.top_k", &c.top_k, "top-k (0: off)");
  t.add("sampling.top_p", &c.top_p, "nucleus mass (1: off)");
  t.add("sampling.min_p", &c.min_p, "keep tokens at least min_p times as probable as the most probable (0: off)");
  t.add("sampling.repetition_penalty", &c.repetition_penalty, "repetition penalty (1: off)");
  t.add("sampling.end_strings", &c.end_strings,
        "text that ends a generated response, as a JSON list, e.g. [\"###\", \"\\nUser:\"] (needs the model's "
        "tokenizer; an occurrence ending within the last token's text, that token kept)");
  t.add("sampling.max_new_tokens", &c.max_new_tokens, "longest generated response");
  t.add("sampling.min_new_tokens", &c.min_new_tokens, "shortest generated response");
  t.add("sampling.seed", &c.sampling_seed, "sampling seed");
  t.required("checkpoint.save_dir", &c.save_dir, "output directory: a model per iteration, metrics.jsonl, config.ini");
  t.add("checkpoint.save_dtype", &c.save_dtype,
        "dtype of the Hugging Face models written per iteration: f32, bf16, f16, or fp8 (the layers' projections "
        "block-scaled to FP8 in 128 x 128 blocks, the rest bf16)");
  t.add("checkpoint.save_max_shard_size", &c.save_max_shard_size,
        "largest safetensors file of those models, in bytes (more: model-0000k-of-0000n files with an index, which "
        "the data-parallel replicas write in parallel)");
  t.add("checkpoint.save_interval", &c.save_interval, "steps between HDF5 checkpoints (0: only at iteration ends and the end)");
  t.add("checkpoint.keep_last", &c.keep_last, "HDF5 checkpoints kept (0: all); older ones go once a new one is complete");
  t.add("checkpoint.async_save", &c.async_save,
        "write HDF5 checkpoints in the background from a host snapshot; each is committed at the next save or the end");
  t.add("checkpoint.exit_duration_mins", &c.exit_duration_mins,
        "minutes after which the run saves a checkpoint at the next step boundary and exits 75 (requeue), as for "
        "SIGTERM / SIGUSR1 (Megatron's --exit-duration-in-mins; 0: no limit)");
  t.add("checkpoint.resume", &c.resume, "continue from <save_dir>/latest if it exists");
  t.add("checkpoint.load", &c.load, "start from this checkpoint directory (weights, optimizer, position)");
  t.add("logging.tensorboard", &c.tensorboard, "write TensorBoard event files to <save_dir>/tensorboard (rank 0)");
  t.add("logging.peak_tflops", &c.peak_tflops,
        "a rank's peak TFLOP/s in the run's precision (e.g. 989 for an H100 SXM in bf16): each step's MFU, its "
        "training phase's model FLOPs per second and rank over it (0: not reported)");
  t.add("logging.profile_step_start", &c.profile_step_start,
        "profile steps profile_step_start..profile_step_end (0: none): every rank writes its ranges (steps, generation, "
        "reference, 1F1B forwards/backwards, point-to-point waits, optimizer) to <save_dir>/profile/rank<r>.json, a "
        "Chrome trace; on GPUs also NVTX ranges and cudaProfilerStart/Stop for nsys");
  t.add("logging.profile_step_end", &c.profile_step_end, "the last profiled step (default: profile_step_start)");
}

}  // namespace

std::string TrainConfig::to_ini() const {
  TrainConfig copy = *this;
  OptionTable table;
  declare(table, copy);
  return table.ini();
}

namespace {
// "section.key" -> value of an INI text as to_ini() writes it.
std::map<std::string, std::string> ini_values(const std::string& text) {
  std::map<std::string, std::string> values;
  std::istringstream in(text);
  std::string line, section;
  while (std::getline(in, line)) {
    if (line.size() > 2 && line.front() == '[' && line.back() == ']') {
      section = line.substr(1, line.size() - 2);
      continue;
    }
    const std::size_t eq = line.find(" = ");
    if (eq != std::string::npos) values[section + "." + line.substr(0, eq)] = line.substr(eq + 3);
  }
  return values;
}

bool free_to_change(const std::string& key) {
  for (const char* prefix : {"checkpoint.", "logging.", "parallel."}) {
    if (key.starts_with(prefix)) return true;
  }
  return key == "spin.max_steps" || key == "spin.validation_interval" || key == "spin.validation_examples" ||
         key == "spin.save_generations" || key == "data.validation";
}
}  // namespace

std::vector<std::string> changed_settings(const std::string& saved_ini, const std::string& current_ini) {
  const auto saved = ini_values(saved_ini);
  std::vector<std::string> changed;
  for (const auto& [key, value] : ini_values(current_ini)) {
    const auto it = saved.find(key);
    if (it == saved.end() || it->second == value || free_to_change(key)) continue;
    changed.push_back(key + " " + it->second + " -> " + value);
  }
  return changed;
}

std::optional<TrainConfig> parse_train_config(int argc, char** argv, bool print) {
  TrainConfig c;
  OptionTable table;
  declare(table, c);
  std::string config_file;
  po::options_description command("spin train");
  command.add_options()("help,h", "print this help")(
      "config", po::value(&config_file), "INI file with [model], [data], [spin], [optim], "
                                         "[parallel], [sampling] and [checkpoint] sections");
  command.add(table.desc());
  po::variables_map vm;
  try {
    // The command line first: the first value stored for an option wins.
    po::store(po::command_line_parser(argc, argv).options(command).run(), vm);
    if (vm.count("help")) {
      if (print) std::cout << "usage: spin train --config FILE.ini [--section.key value ...]\n" << command << "\n";
      return std::nullopt;
    }
    if (vm.count("config")) {
      const std::string path = vm["config"].as<std::string>();
      std::ifstream file(path);
      require(file.good(), path, ": cannot open the configuration file");
      std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
      // A UTF-8 byte order mark, as Windows editors write one, is not part of the first line (boost read it as
      // "an invalid line '[model]'", the mark invisible).
      if (text.starts_with("\xEF\xBB\xBF")) text.erase(0, 3);
      std::istringstream in(text);
      try {
        po::store(po::parse_config_file(in, table.desc(), false), vm);
      } catch (const po::error& e) {
        fail(path, ": ", e.what());
      }
    }
    po::notify(vm);
  } catch (const po::error& e) {
    fail("spin train: ", e.what(), " (spin train --help lists the keys)");
  }
  for (const char* key : {"model.path", "data.train", "checkpoint.save_dir"}) {
    require(vm.count(key) != 0, "spin train: missing required key ", key,
            " (in the INI file's [", std::string(key).substr(0, std::string(key).find('.')), "] section or as --", key, ")");
  }
  require(c.device == "cpu" || c.device == "cuda", "spin train: parallel.device must be cpu or cuda, got '",
          c.device, "'");
  require(c.distributed_timeout_minutes >= 0.0,
          "spin train: parallel.distributed_timeout_minutes must be >= 0 (0: no timeout), got ",
          c.distributed_timeout_minutes);
  require(c.precision == "fp32" || c.precision == "bf16", "spin train: model.precision must be fp32 or bf16, got '",
          c.precision, "'");
  check_frozen_dtype(c.frozen_dtype, "spin train: model.frozen_dtype");
  require(c.data_seed >= 0 && c.sampling_seed >= 0,
          "spin train: data.seed and sampling.seed must not be negative, got ", c.data_seed, " and ", c.sampling_seed);
  require(c.attention_backend == "auto" || c.attention_backend == "simt" || c.attention_backend == "unfused",
          "spin train: model.attention_backend must be auto, simt or unfused, got '", c.attention_backend, "'");
  require(c.logits_chunk_rows >= 0, "spin train: model.logits_chunk_rows must be 0 (off) or positive, got ",
          c.logits_chunk_rows);
  require(c.recompute_num_layers >= 0 && (c.recompute_num_layers == 0 || c.recompute_activations),
          "spin train: model.recompute_num_layers must be 0 (every layer) or positive, with "
          "model.recompute_activations = true, got ", c.recompute_num_layers);
  return c;
}

}  // namespace spin::app
