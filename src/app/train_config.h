// The configuration of `spin train`: an INI file with sections, overridden by command-line
// options of the same dotted names, e.g.
//   spin train --config jobs/configs/demo.ini --spin.iterations 5 --optim.lr 2e-5
// Every key is declared once (with its default and help text); unknown keys and values of the
// wrong type are errors naming the key; the effective configuration prints as INI.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace spin::app {

struct TrainConfig {
  // [model]
  std::string model_path;
  std::string model_adapter;  // a PEFT LoRA adapter merged into model.path's weights
  // [data]
  std::string train, validation;
  std::string prompt_template = "auto";
  std::string columns;  // PROMPT,RESPONSE[,GENERATED]: the records' keys (data::RecordColumns); "": by shape
  std::int64_t max_prompt_tokens = 0, max_response_tokens = 0;
  std::string overlong = "drop";
  bool skip_bad_lines = false;
  int data_workers = 0;  // threads tokenizing the data (0: one a CPU this rank may run on, at most 16)
  std::int64_t data_seed = 1234;  // signed: "-1" is refused, not wrapped to 2^64 - 1
  bool shuffle = true;
  // [spin]
  std::string kl_penalty = "0.1";
  std::string loss = "sigmoid";
  double label_smoothing = 0.0;
  double sft_loss_weight = 0.0;
  bool average_log_probs = false;
  std::int64_t iterations = 3, epochs = 1, max_steps = 0;
  std::int64_t global_batch_size = 8, micro_batch_size = 1, rollout_batch_size = 8, rollout_step_tokens = 0;
  std::int64_t micro_batch_tokens = 0;  // a micro-batch's tokens at most (0: micro_batch_size pairs alone)
  std::string ref_logprobs = "forward";
  std::string generations = "reference";
  bool ref_offload = false;
  bool reuse_generations = false;
  bool pregenerate = false;
  bool mix_previous_iteration = false;
  bool save_generations = false;
  bool cache_ref_logprobs = true;
  std::int64_t validation_interval = 0, validation_examples = 3;
  // [optim]
  double lr = 5e-7, min_lr = 0.0;
  std::string lr_schedule = "constant";
  std::int64_t warmup_steps = 0, lr_decay_steps = 0, constant_steps = 0;
  double warmup_ratio = 0.0;
  std::int64_t wsd_decay_steps = 0;
  double wsd_decay_ratio = 0.0;
  std::string wsd_decay_style = "exponential";
  std::string optimizer = "adamw";  // adamw or rmsprop
  float weight_decay = 0.0f, adam_beta1 = 0.9f, adam_beta2 = 0.999f, adam_eps = 1e-8f, rmsprop_alpha = 0.99f;
  bool decay_embeddings = true;
  double clip_grad = 1.0;
  bool distributed_optimizer = false;
  bool reset_each_iteration = false;
  bool overlap_grad_reduce = false;
  int max_nonfinite_steps = 10;
  // [parallel]
  int tp = 1, pp = 1;
  int vpp = 1;  // model chunks a pipeline stage holds (interleaved 1F1B)
  bool overlap_p2p_comm = true;  // interleaving's transfers overlapped with its computations
  int ep = 1;  // a mixture's expert-parallel size, within the TP group (model::TpDims)
  std::string pp_layers;
  std::string device = "cpu";  // cpu | cuda
  double distributed_timeout_minutes = 10.0;  // a wait on other ranks past it ends the rank (0: none)
  std::string precision = "fp32";  // fp32 | bf16
  std::string frozen_dtype = "auto";       // auto | bf16 | fp32: how the reference is held (model::WeightStorage)
  std::string attention_backend = "auto";  // auto | simt | unfused (GPUs)
  bool recompute_activations = false;
  std::int64_t recompute_num_layers = 0;  // with it: each stage's first this many layers (0: every one)
  bool sequence_parallel = false;
  std::int64_t logits_chunk_rows = 0;
  double router_aux_loss_coef = -1.0;  // a mixture of experts'; < 0: the model's config.json's
  double router_z_loss_coef = 0.0;     // a mixture of experts' router z-loss
  double router_bias_update_rate = 0.0;  // a sigmoid router's correction-bias balancing
  // [lora]
  std::int64_t lora_rank = 0;  // 0: full fine-tuning
  double lora_alpha = 16.0;
  bool lora_rslora = false;
  double lora_dropout = 0.0;
  std::string lora_targets = "all-linear";
  // [sampling]
  bool greedy = false;
  float temperature = 1.0f, top_p = 1.0f, repetition_penalty = 1.0f, min_p = 0.0f;
  std::string end_strings;  // a JSON list of strings
  std::int64_t top_k = 0, max_new_tokens = 256, min_new_tokens = 0;
  std::int64_t sampling_seed = 1234;  // likewise
  // [checkpoint]
  std::string save_dir;
  std::string save_dtype = "f32";
  std::int64_t save_max_shard_size = 5'000'000'000;  // bytes (Hugging Face's max_shard_size="5GB")
  std::int64_t save_interval = 0;  // steps between checkpoints (0: only iteration ends and the end)
  int keep_last = 0;               // checkpoints kept (0: all)
  bool async_save = false;         // write checkpoints in the background (train::CheckpointSaver)
  double exit_duration_mins = 0.0; // save and exit 75 at the first step boundary past this (0: no limit)
  bool resume = false;             // continue from <save_dir>/latest when there is one
  std::string load;                // start from this checkpoint
  // [logging]
  bool tensorboard = true;         // TensorBoard events in <save_dir>/tensorboard
  double peak_tflops = 0.0;        // a rank's peak, for the MFU (0: not reported)
  std::int64_t profile_step_start = 0, profile_step_end = 0;  // a profiling window (0: none)

  std::string to_ini() const;  // the effective configuration
};

// The settings that differ between a checkpoint's saved configuration (its to_ini()) and this
// run's, as "section.key old -> new", leaving out those a resumed run may change without
// changing what it computes: where checkpoints and logs go, the layout (checkpoints reshard),
// spin.max_steps, validation and spin.save_generations. Keys one of the two lacks (options newer than the checkpoint)
// are left out too.
std::vector<std::string> changed_settings(const std::string& saved_ini, const std::string& current_ini);

// nullopt after printing --help (when `print`). Throws spin::Error for unknown keys, bad
// values, a missing or unreadable --config file, and missing required keys.
std::optional<TrainConfig> parse_train_config(int argc, char** argv, bool print);

}  // namespace spin::app
