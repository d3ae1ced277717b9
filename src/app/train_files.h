// spin train's helpers for its settings and the files it writes besides checkpoints: the policy
// of each iteration as a Hugging Face model, the iteration's synthetic data, and what to resume.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "app/train_config.h"
#include "checkpoint/hf_writer.h"
#include "data/prompt_template.h"
#include "data/tokenizer.h"
#include "model/config.h"
#include "model/weights.h"
#include "parallel/process_grid.h"
#include "train/spin_trainer.h"

namespace spin::app {

// spin.kl_penalty: one number, or a comma-separated list (one per iteration).
std::vector<double> parse_lambdas(const std::string& text);

// Writes the policy as a Hugging Face directory, in `format` and in files that the replicas'
// model-parallel rank 0s share (ckpt::save_hf_model), and copies the tokenizer of
// `model_dir` (model.path, or the checkpoint it names) beside it. Collective over the grid's world.
void save_policy(const std::string& dir, const std::string& model_dir, const model::ModelConfig& config,
                 const model::ModelWeights& policy, const parallel::ProcessGrid& grid, const ckpt::HfFormat& format);

// spin.save_generations: an iteration's synthetic data set -- every example's ground truth and
// generated response -- as token-id SPIN records (data/examples.h reads them with
// spin.generations = data), with their text when there is a tokenizer (the responses' as
// data::response_text gives it under `prompt_format`); written to a temporary name and renamed.
void write_generations(const std::filesystem::path& path, const std::vector<data::Example>& examples,
                       const std::vector<train::SpinTrainer::IterationResponse>& responses,
                       const data::Tokenizer* tokenizer, data::PromptTemplate prompt_format);

// The checkpoint to start from: checkpoint.load (a checkpoint, or a save directory with a
// `latest`), else <save_dir>/latest under checkpoint.resume; "" to start from model.path. Refuses a
// run that would write over an earlier run's checkpoints in save_dir (ckpt::earlier_run_in).
std::string checkpoint_to_load(const TrainConfig& c);

}  // namespace spin::app
