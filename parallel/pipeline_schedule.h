// The 1F1B pipeline schedule, Megatron's forward_backward_pipelining_without_interleaving:
// stage s of p runs min(p - s - 1, m) warm-up forwards, then alternates one forward and one
// backward, then drains the remaining backwards. A stage therefore holds at most
// min(p - s, m) micro-batches' activations at once, whatever m is. Activations travel forward
// and their gradients backward by point-to-point messages whose sizes both neighbours know in
// advance (PipelineStage::boundary_size); a send to one neighbour and a receive from the other
// are posted together so that neighbours never wait on each other. Knows nothing of models:
// the stage computes, the schedule moves buffers.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "core/device.h"
#include "parallel/communicator.h"

namespace spin::parallel {

struct PipelineAction {
  enum Kind { Forward, Backward };
  Kind kind;
  int micro_batch;
  int chunk = 0;  // the model chunk (virtual stage) under interleaving
  bool operator==(const PipelineAction&) const = default;
};

// The order in which stage `stage` of `stages` runs its forwards and backwards of
// `micro_batches` micro-batches under 1F1B.
std::vector<PipelineAction> one_f_one_b_order(int stage, int stages, int micro_batches);

// What one pipeline stage computes. The span a forward returns stays valid until the next
// forward, the one a backward returns until the next call (the interleaved schedule sends a
// forward's output after the backward that follows it). Input spans are valid during the call
// only: a stage copies what it keeps.
class PipelineStage {
 public:
  virtual ~PipelineStage() = default;
  // Where the stage's inputs, outputs and their gradients live (the receive buffers go there).
  virtual Device device() const { return Device::Cpu; }
  // Model chunks this stage holds (virtual pipeline stages, Megatron's
  // --num-layers-per-virtual-pipeline-stage): chunk c of stage s of p is virtual stage c * p + s,
  // so the model's layers go stage 0, 1, ..., p - 1, then stage 0 again. 1 without interleaving.
  virtual int chunks() const { return 1; }
  // Floats crossing each stage boundary for micro-batch `mb` (an activation going forward, its
  // gradient coming back), the same at every boundary.
  virtual std::size_t boundary_size(int mb) const = 0;
  // `input`: the previous virtual stage's output (empty on the first). Returns this chunk's
  // output for the next virtual stage (ignored on the last).
  virtual std::span<const float> forward(int chunk, int mb, std::span<const float> input) = 0;
  // `grad_output`: d loss / d output from the next virtual stage (empty on the last). Returns
  // d loss / d input for the previous virtual stage (ignored on the first).
  virtual std::span<const float> backward(int chunk, int mb, std::span<const float> grad_output) = 0;
};

// Throws spin::Error naming stage `rank` unless `buffer` (`what`: "output", "input gradient") holds
// stage.boundary_size(mb) floats: what each schedule checks before sending it.
void check_boundary(const PipelineStage& stage, int rank, std::span<const float> buffer, int mb, const char* what);

// Runs one 1F1B pass over `micro_batches` micro-batches. Collective over `pp` (the pipeline
// group: rank = stage).
void forward_backward_pipelining_without_interleaving(Communicator& pp, int micro_batches,
                                                      PipelineStage& stage);

// Interleaved 1F1B (Narayanan et al. 2021, section 2.2; Megatron's
// forward_backward_pipelining_with_interleaving): each of the p stages holds v = stage.chunks()
// model chunks, and the m micro-batches go through them in groups of p: a group's forwards run
// chunk 0, then chunk 1, ..., its backwards the chunks in reverse. The pipeline fills and drains
// in units of a chunk, so the bubble shrinks from (p - 1) / m of a step to (p - 1) / (v m), for
// v times the point-to-point messages. The output of the last stage's chunk c goes to the first
// stage's chunk c + 1: the stages form a ring.
//
// The forwards, and in the same order the backwards, of every stage (the table of
// Megatron's get_model_chunk_id): entry k is (chunk, micro-batch). Needs m a multiple of p.
std::vector<PipelineAction> interleaved_table(int stages, int chunks, int micro_batches, PipelineAction::Kind kind);

// Forwards stage `stage` runs before its first backward: 2 (p - stage - 1) + (v - 1) p, or all
// of them when m = p (Megatron's all-warmup case), at most v m. The stage then holds at most
// that plus one micro-batch-chunk's activations.
int interleaved_warmup(int stage, int stages, int chunks, int micro_batches);

// The order in which stage `stage` runs its forwards and backwards: the warm-up forwards, then
// one forward and one backward alternately, then the remaining backwards.
std::vector<PipelineAction> interleaved_order(int stage, int stages, int chunks, int micro_batches);

// Runs one interleaved 1F1B pass over `micro_batches` micro-batches through stage.chunks()
// chunks a stage. Collective over `pp` (rank = stage), which needs at least 2 stages; every
// exchange posts its sends and receives together, as in the 1F1B pass. Throws spin::Error on
// every rank alike when m is not a multiple of p (a smaller last group would need a chunk's
// output back at the first stage while the backwards hold the ring: it deadlocks).
void forward_backward_pipelining_with_interleaving(Communicator& pp, int micro_batches, PipelineStage& stage);

// Forwards only through the chunks (Megatron's forward_only: every forward a warm-up one), of any
// number of micro-batches: without the backwards' exchanges a group smaller than p goes through.
void forward_pipelining_with_interleaving(Communicator& pp, int micro_batches, PipelineStage& stage);

// Forwards only (scoring, reference log-probabilities): each stage receives, computes and sends
// on micro-batch after micro-batch; backward() is never called. Collective over `pp`.
void forward_pipelining(Communicator& pp, int micro_batches, PipelineStage& stage);

}  // namespace spin::parallel
