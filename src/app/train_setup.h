// spin train's set-up: every setting, the model's config.json (or checkpoint) and the data checked
// and read -- each error naming its key or file -- before any weight is allocated, on every rank
// alike. What it decides (TrainPlan) is what run_train builds the run from.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "app/model_setup.h"
#include "app/train_config.h"
#include "checkpoint/hf_writer.h"
#include "data/examples.h"
#include "data/prompt_template.h"
#include "data/tokenizer.h"
#include "model/lora.h"
#include "parallel/process_grid.h"
#include "train/lr_schedule.h"
#include "train/optimizer.h"
#include "train/run_shape.h"
#include "train/spin_trainer.h"

namespace spin::app {

struct TrainPlan {
  ModelSource source;  // model.path: a Hugging Face directory or a spin checkpoint
  ModelShard shard;    // this rank's part of the model, its config with the run's router settings
  std::unique_ptr<data::Tokenizer> tokenizer;                       // null for a model without one (token-id data)
  data::PromptTemplate prompt_format = data::PromptTemplate::Chat;  // data.template, resolved
  data::LoadedExamples train_data, validation_data;
  train::SpinConfig spin;
  train::RunShape shape;  // the steps of the iterations and their epochs
  // The steps this run takes (spin.max_steps, else the whole shape), and their learning rates: one schedule for
  // the run, or one an iteration (optim.reset_each_iteration).
  std::int64_t total_steps = 0;
  std::vector<train::LrSchedule> schedules;
  ckpt::HfFormat save_format;        // of the per-iteration models
  train::OptimizerConfig optimizer;  // the [optim] section's
  model::LoraConfig lora;
  std::string loaded;  // the checkpoint the run starts from ("": model.path), chosen before save_dir is written

  // The learning rate of `step` (counted over the run) in `iteration`.
  double lr(std::int64_t iteration, std::int64_t step) const;
};

// Throws spin::Error naming the setting or the file at the first problem. Writes nothing; `check_headers`
// as model_source's (set on one rank).
TrainPlan plan_train_run(const TrainConfig& c, const parallel::ProcessGrid& grid, bool check_headers);

}  // namespace spin::app
