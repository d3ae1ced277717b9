// What every command that runs a model works out first, on every rank: the architecture (from
// config.json), this rank's pipeline stage and its tensor-parallel shard. Throws spin::Error
// naming what is wrong (missing file, layers that do not split, heads that do not divide).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "checkpoint/hf_writer.h"
#include "core/dtype.h"
#include "core/error.h"
#include "data/prompt_template.h"
#include "data/tokenizer.h"
#include "model/config.h"
#include "model/lora.h"
#include "model/stage.h"
#include "model/tp_dims.h"
#include "model/weights.h"
#include "parallel/process_grid.h"

namespace spin::app {

struct ModelShard {
  model::ModelConfig config;
  // The stage's layers: one range, or under interleaving one a model chunk (model::stage_chunks).
  std::vector<model::StageLayers> chunks;
  model::TpDims dims;
  // Every (virtual) stage's layer count, in model order: the split the whole pipeline runs.
  std::vector<std::int64_t> layers;
  // The sequence length a balanced split weighs the layers at (layers_per_stage's `seq`; 0: its default).
  std::int64_t seq = 0;

  // The one range of a stage without interleaving (every command but spin sft, the one that offers it).
  const model::StageLayers& stage() const {
    require(chunks.size() == 1, "this command runs pipeline stages of one model chunk, not ", chunks.size());
    return chunks.front();
  }
};

// Layers a pipeline stage of `pp` (with `chunks` > 1, of each of the pp x chunks virtual stages, in
// model order) as --pp-layers gives them: "" an even split, "balanced" the split that evens out the
// (virtual) stages' training FLOPs, the LM head's on the last (model::balanced_layers, each layer
// weighed at sequences of `seq` tokens, 0: the model's positions up to 4,096; the model's positions
// at most), or a list ("3,5").
std::vector<std::int64_t> layers_per_stage(const model::ModelConfig& config, int pp, int chunks,
                                           const std::string& pp_layers, std::int64_t seq = 0,
                                           const std::string& option = "--pp-layers");

// What --pp-layers balanced would take off an even split's slowest (virtual) stage, where it is 2% or
// more (BalanceHint::kWorthIt): spin plan, spin sft and spin train say so.
struct BalanceHint {
  static constexpr double kWorthIt = 0.02;
  std::vector<std::int64_t> balanced;           // the balanced split
  double even_pace = 0.0, balanced_pace = 0.0;  // the slowest stage's training FLOPs a token under each
  double saving() const { return 1.0 - balanced_pace / even_pace; }
};
// None for a single stage or where balancing saves less; `seq` as layers_per_stage's.
std::optional<BalanceHint> balance_hint(const model::ModelConfig& config, int pp, int chunks, std::int64_t seq = 0);

// "9,9,8,6": what a command prints of a balanced split.
std::string layers_text(const std::vector<std::int64_t>& counts);

// What spin sft and spin train say at start-up of `shard`'s split, `option` naming their setting
// ("--pp-layers", "parallel.pp_layers ="): with `pp_layers` balanced the split it chose; unset,
// balance_hint's saving where there is one (at the shard's `seq`); otherwise "". A line, newline ended.
std::string balance_report(const std::string& program, const ModelShard& shard, const std::string& pp_layers,
                           const std::string& option);

// The names a command gives the stage options in its errors (spin train's: parallel.pp_layers, parallel.vpp).
struct StageOptionNames {
  std::string pp_layers = "--pp-layers", vpp = "--vpp";
};
// This rank's shard of `config` in `grid`'s layout (its expert parallelism too); `pp_layers`: the
// --pp-layers text ("3,5"; empty for an even split; "balanced" at sequences of `seq` tokens, as
// layers_per_stage) -- under interleaving (`chunks` model chunks a stage, --vpp) the layers of each of
// the pp x chunks virtual stages, in model order.
ModelShard plan_model_shard(const model::ModelConfig& config, const parallel::ProcessGrid& grid,
                            const std::string& pp_layers = "", int chunks = 1, std::int64_t seq = 0,
                            const StageOptionNames& names = {});
// The shard of position (tp_rank, pp_rank) in a TP x PP layout of `config`, its experts over `ep`
// groups of the TP ranks (model::TpDims).
ModelShard plan_model_shard(const model::ModelConfig& config, int tp_rank, int tp, int pp_rank, int pp,
                            const std::string& pp_layers = "", int ep = 1, int chunks = 1, std::int64_t seq = 0,
                            const StageOptionNames& names = {});

// The sequence length a run's limits allow (`prompt` + `response` tokens, the model's positions at
// most) that --pp-layers balanced weighs the layers at; 0 (layers_per_stage's default) unless both
// are limited. SPIN trains the real and a generated response to each prompt: `generated` (its
// sampling.max_new_tokens) counts where it is the longer.
std::int64_t balance_tokens(const model::ModelConfig& config, std::int64_t prompt, std::int64_t response,
                            std::int64_t generated = 0);

// Interleaved stages (`chunks` > 1) train a step's micro-batches in groups of at least the `pp`
// stages (parallel::interleaved_group): throws, naming `option`, unless a data-parallel replica's
// `per_replica` -- its micro-batches a step or, cut by tokens (`by_tokens`: a cut is split to reach
// pp), its sequences -- are at least pp.
void check_interleaved_step(const std::string& option, int chunks, int pp, std::int64_t per_replica, bool by_tokens,
                            const std::string& per_replica_is);

// The model an inference command (spin score, generate, eval) runs: a Hugging Face model
// directory, or a spin checkpoint -- a step directory, a merged checkpoint file, or a training
// run's save directory (its `latest`) -- read as its policy (a LoRA run's checkpoint holds the
// merged model there) and resharded to the command's layout, its tokenizer and generation config
// the copies the checkpoint keeps.
struct ModelSource {
  std::string dir;  // the Hugging Face directory or the checkpoint (a save directory resolved)
  bool checkpoint = false;
  model::ModelConfig config;  // config.json's, or the checkpoint's model_config
};
// Throws naming `path` when it is neither; a PEFT `adapter_dir` (merged into a Hugging Face
// model) is refused for a checkpoint. Reads no weights (spin plan and spin data need none), only,
// where a Hugging Face directory has them and `check_headers` is set, their headers:
// check_weights_hold_the_config. A job sets it on one rank (world rank 0, whose error run_collectively
// gives every rank): the check opens every file of the model, and a 405B model's ~190 files opened by
// each of 1,000 ranks would be 190,000 opens of the parallel file system's metadata server at start-up,
// where loading opens only a rank's own files.
ModelSource model_source(const std::string& path, const std::string& adapter_dir, bool check_headers);
// Throws naming `model_dir` when its config.json describes more parameters than its safetensors files
// hold values (a layer count or a width that does not match them) -- before anything is allocated for
// the model: far off (a layer count of 10^12), its tensors' shapes alone would exhaust the node's
// memory, and the kernel's OOM killer ends the job without a word.
void check_weights_hold_the_config(const std::string& model_dir, const model::ModelConfig& config);
// Throws naming `model_dir` and the tensors when its weights hold a tensor the model `config`
// describes does not read -- a part spin would silently leave out (a family's parameter spin does not
// know, or a config.json that does not match the weights) -- other than buffers older transformers
// saved, a tied head's copy and a multimodal checkpoint's other towers.
void check_every_tensor_read(const std::string& model_dir, const model::ModelConfig& config);
// This rank's shard of the source's weights (load_hf_weights for a Hugging Face directory, after
// check_every_tensor_read).
void load_model_weights(const ModelSource& source, const std::string& adapter_dir, const ModelShard& shard,
                        model::ModelWeights& weights, const kernels::Kernels& kernels);

// The model directory's tokenizer with BOS/EOS from config.json, or null when the directory
// has none (token-id data needs none; text data then fails with a message saying so).
std::unique_ptr<data::Tokenizer> load_tokenizer(const std::string& model_dir,
                                                const model::ModelConfig& config);

// The ids a generation stops at: config.json's EOS ids, generation_config.json's eos_token_id
// (one id or a list, where `model_dir` has the file: what transformers' generate() stops at --
// Qwen2.5's <|endoftext|> beside <|im_end|>, say) and the token that ends the template's
// responses (data::response_end) when the model has a tokenizer; each once. A malformed
// generation_config.json is an error naming it.
std::vector<std::int32_t> stop_ids(const std::string& model_dir, const model::ModelConfig& config,
                                   const data::Tokenizer* tokenizer, data::PromptTemplate prompt_template);

// The tokenizer files (SentencePiece, byte-level or tiktoken model, tokenizer and generation configs)
// present in `dir`, and the Hugging Face remote code beside them (tokenization_*.py, configuration_*.py,
// modeling_*.py), as paths.
std::vector<std::string> tokenizer_files(const std::string& dir);
// Copies the tokenizer files of `from` (if any) into the model directory `to`.
void copy_tokenizer_files(const std::string& from, const std::string& to);
// Creates directory `dir` (with its parents) now, so that a run that cannot write there (a missing or
// read-only mount, no permission) fails before it trains, with one error naming `option` and the
// reason. `keep`: leave it (a save directory); else it was a probe, removed again if it was new.
void require_creatable_dir(const std::string& dir, const std::string& option, bool keep);
// Refuses, before any work, an output path `out` that holds something the output would replace (an
// output is written beside it and renamed over it, whole): unless `overwrite` (the program's
// --overwrite); a save directory never (its run's checkpoints). `program` leads the message.
void require_replaceable_output(const std::string& out, bool overwrite, const std::string& program);

// "3,5" -> {3, 5}; "" -> {}. Errors name `option`.
std::vector<std::int64_t> parse_int_list(const std::string& text, const char* option);

// LoRA's settings from a command's options, validated against `model`; errors name `prefix` + "rank",
// "alpha", "dropout", "targets" ("lora." in spin train, "spin sft: --lora-" in spin sft). all-linear
// means the projections the model has (no gate_proj in a plain MLP: GPT-NeoX's, Phi's).
model::LoraConfig lora_settings(std::int64_t rank, double alpha, bool rslora, double dropout,
                                const std::string& targets, const std::string& prefix, const model::ModelConfig& model);

// ModelConfig::router_bias_update_rate of `model` (its path `model_path`) from a command's `option`
// ("model.router_bias_update_rate", "spin sft: --router-bias-update-rate"): >= 0, and other than 0
// only for a sigmoid router's model (GLM-4.5, dots.llm1) trained in full (`lora_rank` 0: with LoRA
// the biases sit in the frozen model the reference shares).
void set_router_bias_update_rate(model::ModelConfig& model, double rate, std::int64_t lora_rank,
                                 const std::string& option, const std::string& model_path);

// Fills `weights` (this rank's shard: `dims`, `stage`) from the Hugging Face model in `model_dir`
// and, when `adapter_dir` is not empty, merges into them the PEFT LoRA adapter there (W + s B A with
// `kernels`, as PEFT's merge_and_unload, each module at the rank and alpha PeftAdapter gives it;
// peft_adapter's refusals): each command that starts
// from a Hugging Face model takes an SFT model trained with PEFT as its base and adapter.
void load_hf_weights(const std::string& model_dir, const std::string& adapter_dir, const model::ModelConfig& config,
                     const model::TpDims& dims, std::span<const model::StageLayers> chunks,
                     model::ModelWeights& weights, const kernels::Kernels& kernels);

// A PEFT LoRA adapter's settings (its adapter_config.json): r, lora_alpha, use_rslora and
// target_modules as spin's LoRA settings, and PEFT's per-module ranks and alphas.
struct PeftAdapter {
  model::LoraConfig lora;
  // rank_pattern's and alpha_pattern's entries in the file's order; each key a regular expression
  // PEFT matches against the end of a module's name.
  std::vector<std::pair<std::string, std::int64_t>> rank_pattern;
  std::vector<std::pair<std::string, double>> alpha_pattern;
  // A mixture of experts' gates among target_modules -- the router ("gate") and Qwen2-MoE's shared
  // expert's gate ("shared_expert_gate"), which PEFT's all-linear wraps too --: merged with the
  // projections' adapters, though spin's own LoRA never trains them (docs/spin.md).
  std::vector<std::string> gates;

  // The rank and alpha PeftModel gives module `module` (its name in the model, as
  // "model.layers.3.self_attn.q_proj"), as LoraModel._create_and_replace picks them: the first key,
  // rank_pattern's then alpha_pattern's, for which Python's re.match(rf".*\.{key}$", module) holds;
  // the rank rank_pattern gives that key, else r; the alpha alpha_pattern gives that key, else
  // lora_alpha -- so a module two keys match takes both from the first.
  std::pair<std::int64_t, double> module_rank_alpha(const std::string& module) const;
};

// The adapter of a PEFT adapter directory, refusing what spin's LoRA is not -- DoRA, adapted
// biases, modules to save, some layers only, a regular expression of targets, a pattern key that is
// not a regular expression spin can read -- naming the file and field.
PeftAdapter peft_adapter(const std::string& adapter_dir);
// Its LoRA settings (r, lora_alpha, use_rslora, target_modules): peft_adapter(adapter_dir).lora.
model::LoraConfig lora_from_peft_config(const std::string& adapter_dir);

// Throws unless a checkpoint whose state recorded LoRA settings `saved` (LoraConfig::summary; ""
// without adapters) was saved by a run of this run's, naming both.
void require_same_lora(const std::string& saved, const model::LoraConfig& ours, const std::string& checkpoint);

// A checkpoint's "lora_config" attribute: {"rank", "alpha", "rslora", "targets": [PEFT's module names]}
// (spin ckpt export-hf --which lora writes it into adapter_config.json).
std::string lora_config_json(const model::LoraConfig& lora);

// The dtype of an exported model: "f32", "bf16" or "f16". Errors name `option`.
DType parse_save_dtype(const std::string& name, const char* option);

// `config`'s tensors in Hugging Face's order (the model's own, one stage holding every layer), whole, each
// marked fp8 where `format` writes it so (names and shapes: nothing allocated).
std::vector<ckpt::HfTensor> hf_tensors(const model::ModelConfig& config, const ckpt::HfFormat& format);

// How `config`'s model is written as Hugging Face files (checkpoint.save_dtype, spin sft --save-dtype,
// spin ckpt export-hf --dtype): `dtype` f32, bf16, f16, or fp8 -- every decoder layer's projection
// matrix (model::is_layer_projection) block-scaled to FP8 E4M3 in `fp8_block` blocks beside its
// scales, as DeepSeek-V3's, Kimi K2's and Qwen3's FP8 releases hold them, the rest in bf16. Errors name
// `option`; fp8 is refused for a model whose files hold a projection as more than a matrix
// (GraniteMoE's experts, one 3-D tensor a layer) and for a multimodal one.
ckpt::HfFormat hf_format(const std::string& dtype, const char* option, const model::ModelConfig& config,
                         std::uint64_t max_shard_bytes, const std::array<std::int64_t, 2>& fp8_block = {128, 128});

// `config`'s config.json as files written in `format` carry it: torch_dtype (or transformers 4.56's
// dtype) the dtype written (bf16 beside FP8) -- as save_pretrained writes it --, and with FP8 its
// quantization_config (quant_method fp8, fmt e4m3, activation_scheme dynamic, weight_block_size) added;
// the text unchanged where neither changes it.
std::string hf_config_json(const model::ModelConfig& config, const ckpt::HfFormat& format);

}  // namespace spin::app
