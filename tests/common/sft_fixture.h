// A short SFT run for layout tests: a tiny 4-layer model, 16 sequences, global batches of 8,
// AdamW with weight decay and clipping, a cosine schedule; optionally saving a checkpoint after
// `save_after` steps or starting from one.
#pragma once

#include <algorithm>
#include <optional>
#include <string>

#include "checkpoint/model_gather.h"
#include "common/test_util.h"
#include "common/tiny_model.h"
#include "core/error.h"
#include "data/batch_plan.h"
#include "kernels/cpu/cpu_kernels.h"
#include "parallel/pipeline_schedule.h"
#include "parallel/process_grid.h"
#include "train/checkpointing.h"
#include "train/lr_schedule.h"
#include "train/pipeline_trainer.h"

namespace spin::testing {

struct SftSetup {
  parallel::Layout layout;
  bool distributed = false;
  bool tie = false;
  std::int64_t micro_batch = 2;
  std::vector<std::int64_t> pp_layers = {};
  int kv_heads = 2;  // of 4 heads: GQA by default; 4 allows TP 4
  bool overlap_grad_reduce = false;
  TinyFamily family = TinyFamily::Llama;
  train::OptimizerAlgorithm optimizer = train::OptimizerAlgorithm::AdamW;
  model::LoraConfig lora{};  // rank > 0: LoRA adapters trained on the frozen model (Result::weights: theirs)
  double peak_lr = 3e-2;     // cosine to a tenth of it over the 5 steps
  float router_aux_loss_coef = 0.0f;  // a mixture of experts: its load-balancing loss trained
  float router_z_loss_coef = 0.0f;    // and its router z-loss
  float router_bias_update_rate = 0.0f;  // a sigmoid router's correction biases balanced after each step
  int chunks = 1;  // model chunks a pipeline stage (> 1: interleaved 1F1B over pp x chunks virtual stages)
  std::int64_t global_batch = 8;
};

struct Result {
  std::vector<double> losses;
  std::vector<double> grad_norms;
  std::vector<double> balance_losses;     // StepMetrics::balance_loss (a mixture of experts)
  std::vector<double> z_losses;           // StepMetrics::z_loss
  std::vector<double> expert_loads;       // StepMetrics::expert_load_max, expert_load_min a step
  std::vector<ckpt::FullTensor> weights;  // on each replica's model-parallel rank 0
  std::uint64_t dp_all_reduces = 0;       // calls on this rank's DP group
  std::uint64_t dp_reduces = 0;
};

// 16 sequences of 3..12 tokens with prompts of 1..4 tokens.
inline std::vector<model::Sequence> dataset() {
  std::vector<model::Sequence> data;
  for (int i = 0; i < 16; ++i) {
    const auto len = static_cast<std::size_t>(3 + (i * 7) % 10);
    data.push_back({testing::random_ids(len, 37, 100 + static_cast<std::uint32_t>(i)), 1 + i % 4, 0, i});
  }
  return data;
}

struct Checkpointing {
  std::string save_dir;  // save after `save_after` steps when not empty
  int save_after = -1;
  std::string load;      // start from this checkpoint (its "step" attribute) when not empty
};

inline Result train(parallel::Communicator& world, const SftSetup& s, int steps = 5,
                    const Checkpointing& ck = {}) {
  const parallel::ProcessGrid grid(world, s.layout);
  testing::TinyShape shape;
  shape.layers = 4;
  shape.tie = s.tie;
  shape.kv_heads = s.kv_heads;
  shape.family = s.family;
  shape.router_aux_loss_coef = s.router_aux_loss_coef;
  model::ModelConfig config = testing::tiny_config(shape);
  config.router_z_loss_coef = s.router_z_loss_coef;
  config.router_bias_update_rate = s.router_bias_update_rate;
  // The stage's model chunks (one without interleaving).
  const std::vector<model::StageLayers> chunks = model::stage_chunks(
      model::split_layers(config.num_layers, grid.pp_size() * s.chunks, s.pp_layers), grid.pp_rank(), grid.pp_size());
  const model::TpDims dims = model::tp_dims(config, grid.tp_rank(), grid.tp_size(), grid.ep_size());
  const std::int64_t pad = s.distributed ? grid.dp_size() : 1;
  model::ModelWeights weights(config, dims, chunks, pad);
  model::ModelWeights grads(config, dims, chunks, pad);
  testing::init_tiny_weights(weights, 3, 0.1f, config.norm_weight_offset);
  const kernels::CpuKernels cpu;
  const model::StageTransformers transformers(config, dims, chunks, grid.tp(), cpu);
  train::OptimizerConfig oc;
  oc.algorithm = s.optimizer;
  oc.beta2 = 0.95f;
  // AdamW divides each gradient by its own running RMS, so an element whose exact gradient is
  // ~0 moves by about lr * g / (|g| + eps), with g decided by float rounding -- which differs
  // between layouts (other summation orders). With eps = 1e-8 that alone moved a few weights
  // of the tied model by 3e-5 after one step. eps = 1e-4 bounds the amplification of rounding
  // to lr * 1e-10 / eps without changing what is compared; losses and gradient norms do not
  // depend on it.
  oc.eps = 1e-4f;
  oc.weight_decay = 0.1f;
  oc.clip_grad = 0.5;  // the tiny model's norms exceed it: clipping is exercised
  oc.distributed = s.distributed;
  oc.decay_embeddings = false;
  oc.overlap_grad_reduce = s.overlap_grad_reduce;
  // LoRA: the adapters (fresh, as PEFT starts them) are the trained parameters.
  std::optional<model::ModelWeights> adapters;
  if (s.lora.enabled()) {
    adapters.emplace(model::ModelWeights::adapters(config, s.lora, dims, chunks, pad));
    adapters->init_random(5, 0.0f);
    grads = model::ModelWeights::adapters(config, s.lora, dims, chunks, pad);
  }
  model::ModelWeights& trained = adapters ? *adapters : weights;
  train::Optimizer optimizer(oc, grid, trained, grads, cpu);
  train::PipelineTrainer trainer(grid, transformers.chunks(), weights, grads, optimizer, adapters ? &*adapters : nullptr);
  train::LrSchedule lr{train::LrDecay::Cosine, s.peak_lr, s.peak_lr / 10, 2, 5};
  int first = 0;
  if (!ck.load.empty()) {
    const ckpt::CheckpointReader reader(ck.load);
    first = std::stoi(reader.attribute("step"));
    train::load_weights(reader, "policy", weights);
    optimizer.load_state(reader, first, 0);
  }

  const auto data = dataset();
  const data::BatchPlan plan(16, s.global_batch, s.micro_batch, grid.dp_size(), 77);
  Result r;
  for (int step = first; step < steps; ++step) {
    const std::int64_t epoch = step / plan.batches_per_epoch();
    const std::int64_t index = step % plan.batches_per_epoch();
    std::int64_t response_tokens = 0;
    for (std::int64_t i : plan.global_batch(epoch, index)) {
      const auto& seq = data[static_cast<std::size_t>(i)];
      response_tokens += static_cast<std::int64_t>(seq.tokens.size()) - seq.mask_from;
    }
    std::vector<model::TokenBatch> micro;
    for (const auto& ids : plan.micro_batches(epoch, index, grid.dp_rank())) {
      std::vector<model::Sequence> seqs;
      for (std::int64_t i : ids) seqs.push_back(data[static_cast<std::size_t>(i)]);
      micro.push_back(model::TokenBatch::pack(seqs));
      micro.back().dropout_seed = model::TokenBatch::step_dropout_seed(77, static_cast<std::uint64_t>(step));
    }
    train::SftLoss loss(response_tokens);
    const train::StepMetrics m = trainer.step(micro, loss, lr.at(step));
    EXPECT_TRUE(m.applied);
    // 1F1B's bound on live activations, in the real model: min(pp - stage, micro-batches); the
    // interleaved schedule's, its warm-up + 1 micro-batch-chunks.
    const int n = static_cast<int>(micro.size());
    EXPECT_EQ(trainer.peak_live_micro_batches(),
              s.chunks == 1 ? std::min(grid.pp_size() - grid.pp_rank(), n)
                            : std::min(parallel::interleaved_warmup(grid.pp_rank(), grid.pp_size(), s.chunks, n) + 1,
                                       n * s.chunks));
    r.losses.push_back(m.loss);
    r.grad_norms.push_back(m.grad_norm);
    r.balance_losses.push_back(m.balance_loss);
    r.z_losses.push_back(m.z_loss);
    r.expert_loads.insert(r.expert_loads.end(), {m.expert_load_max, m.expert_load_min});
    if (step + 1 == ck.save_after) {
      train::save_checkpoint(ck.save_dir, step + 1, grid, weights, nullptr, &optimizer, s.distributed,
                             {{"step", std::to_string(step + 1)}}, 0);
    }
  }
  r.dp_all_reduces = grid.dp().stats().calls_of(parallel::CommOp::AllReduce);
  r.dp_reduces = grid.dp().stats().calls_of(parallel::CommOp::Reduce);
  r.weights = ckpt::gather_model(trained.sharded_state_dict(), grid.mp());
  // By name: under interleaving a stage's chunks are not consecutive, nor are its tensors in the gathered order.
  std::sort(r.weights.begin(), r.weights.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return r;
}

}  // namespace spin::testing
