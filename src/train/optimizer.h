// Optimizer: data-parallel gradient reduction, global-norm clipping and AdamW (or RMSprop, the
// SPIN code's) over one rank's flat parameter buffer (model/weights.h), optionally as a
// distributed optimizer (ZeRO-1).
//   plain:        gradients all-reduced over DP in buckets; every DP rank keeps the full AdamW
//                 state (m, v) and updates every parameter.
//   distributed:  gradients reduce-scattered over DP (in place: rank r's summed part lands at
//                 the start of its gradient buffer); DP rank r keeps m and v for its 1/DP of
//                 the flat buffer only, updates that part, and the parameters are all-gathered.
//                 With overlap, each finished layer's gradients are instead reduced to the
//                 ranks that own them (one reduce per owner whose part the layer overlaps), in
//                 place, and step() reduces the rest the same way: the sums then sit at their
//                 own offsets.
// The float32 parameters are the master weights; with mixed precision the model's bf16 copy is
// written by the same AdamW pass (refreshed after the all-gather when distributed). The norm and
// the update are one kernel call each over a table of ranges of the flat buffers, however many
// tensors there are. Both modes compute the same numbers.
// The gradient norm counts every primary parameter exactly once (ShardedTensor::primary):
// replicated norms on TP rank 0, a tied embedding on the first stage.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "checkpoint/sharded_checkpoint.h"
#include "core/tensor.h"
#include "kernels/kernels.h"
#include "model/weights.h"
#include "parallel/process_grid.h"

namespace spin::train {

enum class OptimizerAlgorithm {
  AdamW,    // torch.optim.AdamW: moments m and v, decoupled weight decay
  RmsProp,  // torch.optim.RMSprop (not centered, no momentum): v alone, L2 weight decay
};

// "adamw" / "rmsprop"; throws naming `setting` (optim.name, --optimizer) for another name.
OptimizerAlgorithm parse_optimizer_algorithm(const std::string& name, const char* setting);
const char* optimizer_algorithm_name(OptimizerAlgorithm algorithm);

struct OptimizerConfig {
  OptimizerAlgorithm algorithm = OptimizerAlgorithm::AdamW;
  float alpha = 0.99f;  // RMSprop's smoothing constant (torch's default)
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;     // never applied to norms and biases (1-D parameters)
  bool decay_embeddings = true;  // whether the embedding and LM head are decayed
  double clip_grad = 1.0;        // max global L2 norm; 0 disables clipping
  bool distributed = false;      // ZeRO-1
  std::int64_t bucket_floats = 10'000'000;  // DP all-reduce bucket (40 MB)
  // Start the DP reduction of each layer's gradients as soon as the last micro-batch's backward
  // has finished with it (reduce_layer_async), instead of all of them in step() (Megatron's
  // overlap_grad_reduce): an all-reduce, or with the distributed optimizer a reduce to each
  // owner of a part of the layer. Off by default: it pays
  // only where the reduction runs beside the compute -- NCCL runs it on a side stream; on the
  // CPU path it measured 5% slower at DP 2, MPI progressing the nonblocking all-reduces only
  // inside MPI calls (docs/training.md).
  bool overlap_grad_reduce = false;
  int max_nonfinite_in_a_row = 10;          // then the run stops with an error

  // The settings' names in a command's own words, for validate's errors ("optim.eps", "spin sft: --adam-eps").
  struct Names {
    std::string alpha, betas, eps, weight_decay, clip_grad, max_nonfinite;
  };
  // Throws spin::Error naming the setting: torch.optim's bounds (alpha and the betas in [0, 1), a weight decay
  // >= 0), and eps > 0 besides (a weight whose gradient stays 0 would take 0 / 0); clip_grad >= 0 (0: off); at
  // least one non-finite step before the run stops.
  void validate(const Names& names) const;
};

struct OptimizerStep {
  double grad_norm = 0.0;  // global L2 norm before clipping
  bool applied = false;    // false: skipped for a non-finite loss or gradient norm
  std::int64_t skipped_total = 0;
};

class Optimizer {
 public:
  // `params` and `grads` share one layout; with config.distributed their flat length must be a
  // multiple of the DP size (ModelWeights' pad_multiple).
  Optimizer(const OptimizerConfig& config, const parallel::ProcessGrid& grid,
            model::ModelWeights& params, model::ModelWeights& grads, const kernels::Kernels& k);

  // Reduces the gradients over DP, measures their global norm, clips and applies AdamW at
  // learning rate `lr` -- unless the loss or the norm is not finite, in which case the step is
  // skipped (and after config.max_nonfinite_in_a_row such steps in a row, an error every rank
  // agrees on stops the run). Collective over the whole grid.
  OptimizerStep step(double lr, bool loss_is_finite = true);

  // The gradients of local layer `layer` are final for this step: starts their DP reduction
  // (with config.overlap_grad_reduce and more than one replica; otherwise nothing). step() waits
  // for it and reduces only the rest. Every DP rank calls it in the same order.
  void reduce_layer_async(std::int64_t layer);

  std::int64_t steps_taken() const { return steps_; }
  std::int64_t steps_skipped() const { return skipped_; }

  // Checkpointing. The optimizer state this rank holds, as pieces of global tensors in groups
  // named as PyTorch names the state -- AdamW's "optimizer/exp_avg" and "optimizer/exp_avg_sq",
  // RMSprop's "optimizer/square_avg" -- primary copies only, so that across the ranks that
  // write (DP rank 0, or every DP rank when distributed) each value appears once. The pieces
  // point into host memory (a copy of device state) valid until the next call.
  std::vector<ckpt::PieceWrite> state_pieces() const;
  // Restores the state of every element this rank holds (from a checkpoint of any layout,
  // distributed or not) and the step counters. Throws naming the checkpoint's optimizer for one
  // that holds another algorithm's state.
  void load_state(const ckpt::CheckpointReader& reader, std::int64_t steps, std::int64_t skipped);
  // Optimizer state held by this rank.
  std::size_t state_bytes() const;
  // A fresh optimizer over the same parameters: moments and step counters back to zero (a new
  // run's, as the SPIN code starts every self-play iteration).
  void reset_state();

 private:
  struct Segment {  // a run of the owned region inside one parameter
    std::int64_t offset;  // in the flat buffer
    std::int64_t length;
    bool primary;
    std::size_t param;          // index in sharded_state_dict()
    std::int64_t param_offset;  // flat offset of that parameter's first element
  };
  // The moment buffer's pointer for flat offset `at` of the owned region.
  float* moment(const Tensor& t, std::int64_t at) const { return t.f32() + (at - begin_); }

  OptimizerConfig config_;
  const parallel::ProcessGrid& grid_;
  model::ModelWeights& params_;
  model::ModelWeights& grads_;
  const kernels::Kernels& k_;
  std::int64_t begin_ = 0, end_ = 0;  // the region of the flat buffer this rank updates
  std::vector<Segment> segments_;
  std::vector<kernels::Kernels::UpdateRange> update_ranges_;  // segments_, from begin_
  std::vector<kernels::Kernels::Range> norm_ranges_;         // the primary ones
  struct InFlight {
    std::int64_t begin, end;  // flat range of the gradients being reduced
    std::unique_ptr<parallel::PendingOp> op;
  };
  std::vector<InFlight> in_flight_;  // started by reduce_layer_async, finished in step()
  // Distributed optimizer with overlap: starts the reduction of flat range [begin, end) to the
  // ranks owning its parts, in pieces of at most bucket_floats.
  void reduce_to_owners(std::int64_t begin, std::int64_t end);
  // Reduces what reduce_layer_async did not, after waiting for what it did: all-reduced (plain)
  // or reduced to the owners (distributed).
  void reduce_the_rest();
  Tensor m_, v_;                  // on the parameters' device; m_ AdamW's only
  mutable Tensor host_m_, host_v_;  // what state_pieces() points into
  std::int64_t steps_ = 0;
  std::int64_t skipped_ = 0;
  int nonfinite_in_a_row_ = 0;
};

}  // namespace spin::train
