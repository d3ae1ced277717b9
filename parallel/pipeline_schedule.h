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
#include <optional>
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
// forward, the one a backward returns until the next backward: the interleaved schedule sends a
// forward's output after the backward that follows it, and with its transfers overlapped a
// backward's input gradient during the forward that follows it. Input spans are valid during the call
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
// model chunks, and the m micro-batches go through them in groups: a group's forwards run
// chunk 0, then chunk 1, ..., its backwards the chunks in reverse. The pipeline fills and drains
// in units of a chunk, so the bubble shrinks from (p - 1) / m of a step to (p - 1) / (v m), for
// v times the point-to-point messages. The output of the last stage's chunk c goes to the first
// stage's chunk c + 1: the stages form a ring.
//
// Micro-batches a group takes (Megatron's microbatch_group_size_per_vp_stage) when a pass trains
// m of them: p when p divides m, else the smallest N > p whose last group (what is left of m in
// groups of N) holds at least p -- the first stage takes chunk c + 1 of a micro-batch p - 1
// computations after the last stage's chunk c, so a smaller last group would wait on it (and the
// backwards mirror this). m = 6 at p = 4: one group of 6; m = 9: groups of 5 and 4. Throws
// spin::Error unless p <= m.
int interleaved_group(int stages, int micro_batches);

// The forwards (or, in the same order, the backwards) of every stage in groups of `group`
// micro-batches, the last group what is left: entry k is (chunk, micro-batch), Megatron's
// get_schedule_table.
std::vector<PipelineAction> interleaved_table(int group, int chunks, int micro_batches, PipelineAction::Kind kind);

// Forwards stage `stage` runs before its first backward when a pass trains m micro-batches:
// 2 (p - stage - 1) + (v - 1) N (N: interleaved_group), or all v m of them when that is as many
// or more. The stage then holds at most that plus one micro-batch-chunk's activations.
int interleaved_warmup(int stage, int stages, int chunks, int micro_batches);

// The order in which stage `stage` runs its forwards and backwards: the warm-up forwards, then
// one forward and one backward alternately, then the remaining backwards.
std::vector<PipelineAction> interleaved_order(int stage, int stages, int chunks, int micro_batches);

// One step of a stage's part in an interleaved pass: its computation (a forward, a backward, both
// or neither), then one exchange, which sends what was computed on round the ring (except the
// model's last output and first input gradient, which go nowhere) while later steps' inputs and
// output gradients arrive. A stage's received buffers wait in a queue per chunk and direction;
// each chunk's micro-batches arrive in order.
struct InterleavedStep {
  std::optional<PipelineAction> forward, backward;
  bool send_output = false, send_grad = false;
  std::optional<PipelineAction> receive_input;  // the forward whose input arrives
  std::optional<PipelineAction> receive_grad;   // the backward whose output gradient arrives
  bool operator==(const InterleavedStep&) const = default;
};

// Stage `stage`'s steps, the first one an exchange alone. Each receive sits at the exchange in
// which its sender sends it, as in Megatron (recv_tensor_from_previous_stage): from the previous
// rank, the input of this rank's next forward; on the first rank, round the ring, the output of
// the last rank's forward k - (p - 1) after forward k (the last rank's gradients likewise). So
// every message is taken by a receive its sender's progress does not wait on, and no rank waits
// on another in a cycle, even where a send completes only once its receive is posted (NCCL,
// large MPI messages). `forward_only`: every forward a warm-up one, any m (the groups p, the
// last one smaller if need be; every rank's receives then the next forward's input).
std::vector<InterleavedStep> interleaved_steps(int stage, int stages, int chunks, int micro_batches, bool forward_only);

// What a stage's interleaved pass does, in order: its steps' computations, and their exchanges'
// transfers posted and waited for.
struct PassAction {
  enum Kind { Forward, Backward, Post, Wait };
  // Which of an exchange's transfers: the activations (the output sent, an input received), the
  // gradients (the input gradient sent, an output gradient received), or both.
  enum Transfers { Activations, Gradients, Both };
  Kind kind;
  int step = 0;                // Forward, Backward, Post: the step's index
  Transfers transfers = Both;  // Post: which of the step's; Wait: every posted one of these not yet waited for
  bool operator==(const PassAction&) const = default;
};

// The pass over `steps` (interleaved_steps). Without `overlap`, each step's computation, then its
// exchange posted and waited for at once. With `overlap` (Megatron's overlap_p2p_comm), each
// exchange is split by direction and posted without waiting: the activations right after the
// step's forward, the gradients right after its backward; and waited for only before the
// computation that needs them: every activation transfer posted so far before a forward (its input
// has arrived; the previous output may be overwritten), every gradient transfer before a backward
// (likewise), the rest at the end. So a stage's activations travel during its backward and its
// gradients during its next forward. Every transfer is posted no later and waited for no earlier
// than without overlap (interleaved_steps_test walks both under blocking sends, on independent
// messages as MPI has them and as NCCL's ordered groups).
std::vector<PassAction> interleaved_pass(const std::vector<InterleavedStep>& steps, bool overlap);

// Runs one interleaved 1F1B pass over `micro_batches` micro-batches through stage.chunks()
// chunks a stage: interleaved_pass of interleaved_steps, its transfers overlapped with the
// computations unless `overlap` is false (then every exchange posts its sends and receives
// together and waits for them, as in the 1F1B pass). Collective over `pp` (rank = stage), which
// needs at least 2 stages. Throws spin::Error on every rank alike when m < p.
void forward_backward_pipelining_with_interleaving(Communicator& pp, int micro_batches, PipelineStage& stage,
                                                   bool overlap = true);

// Forwards only through the chunks (Megatron's forward_only), of any number of micro-batches.
void forward_pipelining_with_interleaving(Communicator& pp, int micro_batches, PipelineStage& stage,
                                          bool overlap = true);

// Forwards only (scoring, reference log-probabilities): each stage receives, computes and sends
// on micro-batch after micro-batch; backward() is never called. Collective over `pp`.
void forward_pipelining(Communicator& pp, int micro_batches, PipelineStage& stage);

}  // namespace spin::parallel
