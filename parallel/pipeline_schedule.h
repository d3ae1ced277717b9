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
  bool operator==(const PipelineAction&) const = default;
};

// The order in which stage `stage` of `stages` runs its forwards and backwards of
// `micro_batches` micro-batches under 1F1B.
std::vector<PipelineAction> one_f_one_b_order(int stage, int stages, int micro_batches);

// What one pipeline stage computes. Spans returned stay valid until the next call.
class PipelineStage {
 public:
  virtual ~PipelineStage() = default;
  // Where the stage's inputs, outputs and their gradients live (the receive buffers go there).
  virtual Device device() const { return Device::Cpu; }
  // Floats crossing each stage boundary for micro-batch `mb` (an activation going forward, its
  // gradient coming back).
  virtual std::size_t boundary_size(int mb) const = 0;
  // `input`: the previous stage's output (empty on the first stage). Returns this stage's
  // output for the next stage (ignored on the last stage).
  virtual std::span<const float> forward(int mb, std::span<const float> input) = 0;
  // `grad_output`: d loss / d output from the next stage (empty on the last stage). Returns
  // d loss / d input for the previous stage (ignored on the first stage).
  virtual std::span<const float> backward(int mb, std::span<const float> grad_output) = 0;
};

// Runs one 1F1B pass over `micro_batches` micro-batches. Collective over `pp` (the pipeline
// group: rank = stage).
void forward_backward_pipelining_without_interleaving(Communicator& pp, int micro_batches,
                                                      PipelineStage& stage);

// Forwards only (scoring, reference log-probabilities): each stage receives, computes and sends
// on micro-batch after micro-batch; backward() is never called. Collective over `pp`.
void forward_pipelining(Communicator& pp, int micro_batches, PipelineStage& stage);

}  // namespace spin::parallel
