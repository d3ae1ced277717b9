// PipelineTrainer: one optimizer step of a model split over TP x PP x DP ranks. The step zeroes
// the gradients, runs the 1F1B schedule over this DP rank's micro-batches (forward and
// backward of its pipeline stage, the loss on the last stage), all-reduces the gradients of tied
// embeddings between the first and last stage, and hands over to the Optimizer. The loss is
// reduced so that every rank reports the same number. A mixture of experts' load (the rows each
// expert took, all replicas) is counted, and with ModelConfig::router_bias_update_rate its
// routers' correction biases move toward balance after the step (DeepSeek-V3's auxiliary-loss-free
// balancing): bias_e += rate x sign(mean load - load_e), per layer -- Megatron's
// --moe-router-enable-expert-bias with --moe-router-bias-update-rate.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "model/transformer.h"
#include "parallel/process_grid.h"
#include "train/optimizer.h"
#include "train/sequence_loss.h"

namespace spin::train {

struct StepMetrics {
  double loss = 0.0;        // the global batch's loss, identical on every rank
  double grad_norm = 0.0;   // before clipping
  double lr = 0.0;
  bool applied = false;     // false when skipped for a non-finite loss or norm
  std::int64_t skipped_total = 0;
  double seconds = 0.0;     // wall time of the step on this rank
  double pipeline_seconds = 0.0;  // of which in the 1F1B schedule
  double compute_seconds = 0.0;   // of which in this stage's forwards and backwards; the rest of
                                  // the schedule is the pipeline bubble and communication
  // A mixture of experts: the router's load-balancing loss (model::MoeRouting::balance_loss, its
  // coefficient not applied), the mean over the layers and the micro-batches of all replicas; 0
  // for a dense model. Trained where ModelConfig::router_aux_loss_coef is not 0: the loss
  // minimised is the sequences' plus the coefficient times this.
  double balance_loss = 0.0;
  // And its router z-loss (model::MoeRouting::z_loss) likewise, trained where
  // ModelConfig::router_z_loss_coef is not 0.
  double z_loss = 0.0;
  // Over the step's training rows (all replicas), each layer of experts' busiest expert's rows over
  // its experts' mean, the largest over the layers (1: balanced), and its least busy expert's
  // likewise, the smallest (0: an expert no row reached); both 0 for a dense model.
  double expert_load_max = 0.0;
  double expert_load_min = 0.0;
  // Under expert parallelism (ProcessGrid::ep_size > 1): each layer's busiest expert-parallel group's
  // rows -- its experts' sum -- over the groups' mean, the largest over the layers (1: balanced). The
  // ranks of a layer wait for that group, so it bounds the experts' share of the step from below (a
  // step's sums smooth what each micro-batch's routing does); 0 at ep 1.
  double expert_rank_load_max = 0.0;
};

// StepMetrics::expert_rank_load_max from `load` ([layers, experts], global_expert_load's): each layer's
// loads summed over `groups` consecutive blocks of experts (model::TpDims' expert-parallel groups), the
// busiest block over the blocks' mean, the largest over the layers (layers without rows skipped; 0 if none).
double expert_group_load_max(const std::vector<double>& load, std::int64_t experts, int groups);

// The correction bias of each layer of experts in `stage` (LayerWeights::router_bias: GLM-4.5's,
// dots.llm1's) moved by ModelConfig::router_bias_update_rate toward balance: + rate where the
// layer's expert took fewer rows than its experts' mean in `load` ([layers, experts], all layers,
// global_expert_load's), - rate where more, unchanged where as many (Megatron's
// get_updated_expert_bias).
void update_router_biases(model::ModelWeights& weights, const model::StageLayers& stage,
                          const model::ModelConfig& config, const std::vector<double>& load);

class PipelineTrainer {
 public:
  // With `adapters` (LoRA, model/lora.h) the model is weights + adapters, and `grads` and the
  // optimizer are the adapters': the weights stay frozen.
  PipelineTrainer(const parallel::ProcessGrid& grid, const model::Transformer& transformer,
                  model::ModelWeights& weights, model::ModelWeights& grads, Optimizer& optimizer,
                  const model::ModelWeights* adapters = nullptr)
      : PipelineTrainer(grid, model::TransformerChunks{&transformer}, weights, grads, optimizer, adapters) {}
  // Interleaving (virtual pipeline stages): one Transformer a model chunk of this stage, in model
  // order (model::stage_chunks), over weights and gradients holding every chunk's layers; the
  // step runs the interleaved 1F1B schedule, whose micro-batches must be a multiple of the
  // pipeline's stages. One chunk: the 1F1B schedule.
  PipelineTrainer(const parallel::ProcessGrid& grid, model::TransformerChunks chunks, model::ModelWeights& weights,
                  model::ModelWeights& grads, Optimizer& optimizer, const model::ModelWeights* adapters = nullptr);

  // Interleaving: the pass's transfers overlapped with its computations (Megatron's
  // overlap_p2p_comm, parallel::interleaved_pass), or each exchange waited for at once. On by
  // default; the results are the same bitwise either way.
  void set_overlap_p2p_comm(bool on) { overlap_p2p_comm_ = on; }

  // `micro_batches`: this DP rank's share of the global batch, in order. Every rank of the
  // pipeline passes the same micro-batches (each stage needs their shapes).
  StepMetrics step(const std::vector<model::TokenBatch>& micro_batches, SequenceLoss& loss,
                   double lr);

  // Peak number of micro-batches (interleaved: micro-batch-chunks) whose activations this stage held
  // in the last step.
  int peak_live_micro_batches() const { return peak_live_; }
  // Under interleaving (`chunks` > 1) the micro-batches of the model's last chunk take their
  // activation buffers from a pool of their own (1), those of the other chunks from one they share
  // (0); one pool without interleaving. spin plan counts the same (train/memory_plan.h).
  static int activation_pool(const model::StageLayers& chunk, int chunks) { return chunks > 1 && chunk.last ? 1 : 0; }
  // Sets of activation buffers this stage keeps between steps (the 1F1B ring; interleaved, its pools
  // of the most micro-batches in flight at once that take from each), and their bytes.
  int activation_sets() const {
    std::size_t n = 0;
    for (const auto& pool : pools_) n += pool.size();
    return static_cast<int>(n);
  }
  std::size_t activation_bytes() const {
    std::size_t total = 0;
    for (const auto& pool : pools_) {
      for (const model::Activations& a : pool) total += a.bytes();
    }
    return total;
  }

 private:
  const parallel::ProcessGrid& grid_;
  model::TransformerChunks chunks_;
  model::ModelWeights& weights_;
  const model::ModelWeights* adapters_;
  model::ModelWeights& grads_;
  Optimizer& optimizer_;
  std::vector<std::deque<model::Activations>> pools_;  // activation_pool's, reused across steps
  int peak_live_ = 0;
  bool overlap_p2p_comm_ = true;
};

}  // namespace spin::train
