// Interleaved 1F1B (pipeline_schedule.h). Every stage runs the same table of forwards and of
// backwards; what differs is how far ahead its forwards run (interleaved_warmup). A stage's part
// is a list of steps, each a computation and one exchange (interleaved_steps): a pure function of
// the layout, which the tests walk under models of blocking point-to-point messages, and which
// the pass below only executes, its transfers overlapped with the computations or not
// (interleaved_pass). Received buffers wait in a queue per chunk; a chunk's micro-batches arrive
// in order, which is how a receive knows its size.
#include <deque>
#include <memory>
#include <utility>

#include "core/error.h"
#include "core/profile.h"
#include "core/tensor.h"
#include "parallel/pipeline_schedule.h"  // declares what this file defines

namespace spin::parallel {

namespace {
constexpr int kActivationTag = 13;
constexpr int kGradientTag = 14;

// The ring of one stage: activations to the next rank (the last stage's to the first), gradients
// to the previous one.
class RingLinks {
 public:
  RingLinks(Communicator& pp, PipelineStage& stage)
      : pp_(pp),
        stage_(stage),
        next_((pp.rank() + 1) % pp.size()),
        prev_((pp.rank() + pp.size() - 1) % pp.size()),
        inputs_(static_cast<std::size_t>(stage.chunks())),
        grads_(static_cast<std::size_t>(stage.chunks())) {}

  // Posts the transfers `which` of one step's exchange: what its forward and backward computed
  // (`output`, `grad_input`) to the next and the previous rank where the step sends them, and the
  // receives it names. A send and its receive are posted whatever their size, so both sides always
  // agree on the messages. Without `overlap`, waits for them at once.
  void post(const InterleavedStep& step, PassAction::Transfers which, std::span<const float> output,
            std::span<const float> grad_input, bool overlap) {
    const bool activations = which != PassAction::Gradients, gradients = which != PassAction::Activations;
    std::vector<P2POp> ops;
    if (activations && step.send_output) {
      check_boundary(stage_, pp_.rank(), output, step.forward->micro_batch, "output");
      ops.push_back(P2POp::send(output.data(), output.size(), next_, kActivationTag));
    }
    if (gradients && step.send_grad) {
      check_boundary(stage_, pp_.rank(), grad_input, step.backward->micro_batch, "input gradient");
      ops.push_back(P2POp::send(grad_input.data(), grad_input.size(), prev_, kGradientTag));
    }
    if (activations && step.receive_input) ops.push_back(receive(inputs_, *step.receive_input, prev_, kActivationTag));
    if (gradients && step.receive_grad) ops.push_back(receive(grads_, *step.receive_grad, next_, kGradientTag));
    if (ops.empty()) return;
    const profile::Range range("p2p", "ops", static_cast<std::int64_t>(ops.size()));
    if (!overlap) {
      pp_.exchange(ops);
      return;
    }
    pending_.push_back({which, pp_.start_exchange(ops)});
  }
  // Waits for every posted transfer of kind `which`.
  void wait(PassAction::Transfers which) {
    const profile::Range range("p2p wait");
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->first != which) {
        ++it;
        continue;
      }
      it->second->wait();
      it = pending_.erase(it);
    }
  }

  // The oldest received buffer of the chunk, which must be micro-batch mb's; give it back with
  // recycle() once the stage has used it.
  Tensor take_input(int chunk, int mb) { return take(inputs_, chunk, mb, "activation"); }
  Tensor take_grad(int chunk, int mb) { return take(grads_, chunk, mb, "gradient"); }
  void recycle(Tensor buffer) {
    if (buffer.defined()) free_.push_back(std::move(buffer));
  }
  std::span<const float> view(const Tensor& buffer, int mb) const { return {buffer.f32(), stage_.boundary_size(mb)}; }

  // Throws unless every received buffer was taken: a pass's steps that receive what no computation
  // uses are wrong (the next pass would take a stale buffer).
  void check_drained() const {
    require(pending_.empty(), "interleaved pipeline stage ", pp_.rank(), ": the pass ends with ", pending_.size(),
            " transfers not waited for");
    for (std::size_t c = 0; c < inputs_.size(); ++c) {
      require(inputs_[c].buffers.empty() && grads_[c].buffers.empty(), "interleaved pipeline stage ", pp_.rank(),
              ": chunk ", c, " ends the pass holding ", inputs_[c].buffers.size(), " activations and ",
              grads_[c].buffers.size(), " gradients it never used");
    }
  }

 private:
  struct Queue {
    std::deque<Tensor> buffers;  // received, not yet taken
    int received = 0;            // micro-batches received so far: the next one's index
    int taken = 0;
  };

  P2POp receive(std::vector<Queue>& queues, const PipelineAction& a, int peer, int tag) {
    Queue& q = queues[static_cast<std::size_t>(a.chunk)];
    require(a.micro_batch == q.received++, "interleaved pipeline stage ", pp_.rank(), ": chunk ", a.chunk,
            " receives micro-batch ", a.micro_batch, " out of order");
    const std::size_t n = stage_.boundary_size(a.micro_batch);
    Tensor buffer;
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      if (static_cast<std::size_t>(it->numel()) >= n) {
        buffer = std::move(*it);
        free_.erase(it);
        break;
      }
    }
    if (!buffer.defined()) buffer = Tensor::zeros({static_cast<std::int64_t>(n)}, DType::F32, stage_.device());
    q.buffers.push_back(std::move(buffer));
    return P2POp::recv(q.buffers.back().f32(), n, peer, tag);
  }
  Tensor take(std::vector<Queue>& queues, int chunk, int mb, const char* what) {
    Queue& q = queues[static_cast<std::size_t>(chunk)];
    require(!q.buffers.empty() && q.taken == mb, "interleaved pipeline stage ", pp_.rank(), ": chunk ", chunk,
            " needs the ", what, " of micro-batch ", mb, " but holds ", q.buffers.size(), " from micro-batch ",
            q.taken);
    ++q.taken;
    Tensor buffer = std::move(q.buffers.front());
    q.buffers.pop_front();
    return buffer;
  }

  Communicator& pp_;
  PipelineStage& stage_;
  const int next_, prev_;
  std::vector<Queue> inputs_, grads_;  // by chunk
  std::vector<Tensor> free_;           // buffers to receive into again
  std::vector<std::pair<PassAction::Transfers, std::unique_ptr<PendingOp>>> pending_;  // posted, in order
};

// Executes a stage's steps: the forwards and backwards with the buffers they take.
class InterleavedRun {
 public:
  InterleavedRun(Communicator& pp, PipelineStage& stage)
      : stage_(stage), links_(pp, stage), first_(pp.rank() == 0), last_(pp.rank() == pp.size() - 1) {}

  void run(const std::vector<InterleavedStep>& steps, bool overlap) {
    std::span<const float> output, grad_input;  // the last forward's and backward's
    for (const PassAction& a : interleaved_pass(steps, overlap)) {
      const InterleavedStep& step = steps[static_cast<std::size_t>(a.step)];
      switch (a.kind) {
        case PassAction::Forward: output = forward(*step.forward); break;
        case PassAction::Backward: grad_input = backward(*step.backward); break;
        case PassAction::Post: links_.post(step, a.transfers, output, grad_input, overlap); break;
        case PassAction::Wait: links_.wait(a.transfers); break;
      }
    }
    links_.check_drained();
  }

 private:
  std::span<const float> forward(const PipelineAction& a) {
    const bool model_first = first_ && a.chunk == 0;
    Tensor input = model_first ? Tensor() : links_.take_input(a.chunk, a.micro_batch);
    std::span<const float> output;
    {
      const profile::Range range("forward", "mb", a.micro_batch);
      const std::span<const float> in = model_first ? std::span<const float>() : links_.view(input, a.micro_batch);
      output = stage_.forward(a.chunk, a.micro_batch, in);
    }
    links_.recycle(std::move(input));
    return output;
  }
  std::span<const float> backward(const PipelineAction& a) {
    const bool model_last = last_ && a.chunk == stage_.chunks() - 1;
    Tensor grad = model_last ? Tensor() : links_.take_grad(a.chunk, a.micro_batch);
    std::span<const float> grad_input;
    {
      const profile::Range range("backward", "mb", a.micro_batch);
      const std::span<const float> in = model_last ? std::span<const float>() : links_.view(grad, a.micro_batch);
      grad_input = stage_.backward(a.chunk, a.micro_batch, in);
    }
    links_.recycle(std::move(grad));
    return grad_input;
  }

  PipelineStage& stage_;
  RingLinks links_;
  const bool first_, last_;
};

// Builds a stage's steps from its tables (interleaved_steps says in what order).
class StepPlanner {
 public:
  StepPlanner(int stage, int stages, int chunks, int micro_batches, int group)
      : stage_(stage),
        stages_(stages),
        chunks_(chunks),
        forwards_(interleaved_table(group, chunks, micro_batches, PipelineAction::Forward)),
        backwards_(interleaved_table(group, chunks, micro_batches, PipelineAction::Backward)) {}

  int total() const { return static_cast<int>(forwards_.size()); }

  // Forward k and backward b of the tables (either may be none), then an exchange that receives
  // what arrives once `forwards_done` forwards and `backwards_done` backwards have run (none: no
  // receive of that kind).
  InterleavedStep step(std::optional<int> k, std::optional<int> b, std::optional<int> forwards_done,
                       std::optional<int> backwards_done) const {
    InterleavedStep step;
    if (k) {
      step.forward = forwards_[static_cast<std::size_t>(*k)];
      step.send_output = !(stage_ == stages_ - 1 && step.forward->chunk == chunks_ - 1);
    }
    if (b) {
      step.backward = backwards_[static_cast<std::size_t>(*b)];
      step.send_grad = !(stage_ == 0 && step.backward->chunk == 0);
    }
    if (forwards_done) step.receive_input = input_after(*forwards_done);
    if (backwards_done) step.receive_grad = grad_after(*backwards_done);
    return step;
  }
  // The input of the next forward once `done` have run (the forward-only pass, on every rank).
  std::optional<PipelineAction> next_input(int done) const {
    if (done >= total()) return std::nullopt;
    const PipelineAction& a = forwards_[static_cast<std::size_t>(done)];
    if (stage_ == 0 && a.chunk == 0) return std::nullopt;
    return a;
  }

 private:
  // The input that arrives once `done` forwards have run. From the previous rank, the next
  // forward's; on the first rank, the last rank's output of forward done - p (p - 1 exchanges
  // behind round the ring), bound for the next chunk.
  std::optional<PipelineAction> input_after(int done) const {
    if (stage_ != 0) return next_input(done);
    const int j = done - stages_;
    if (j < 0 || j >= total()) return std::nullopt;
    const PipelineAction& a = forwards_[static_cast<std::size_t>(j)];
    if (a.chunk == chunks_ - 1) return std::nullopt;
    return PipelineAction{PipelineAction::Forward, a.micro_batch, a.chunk + 1};
  }
  // The output gradient that arrives once `done` backwards have run: the mirror image.
  std::optional<PipelineAction> grad_after(int done) const {
    if (stage_ != stages_ - 1) {
      if (done >= total()) return std::nullopt;
      return backwards_[static_cast<std::size_t>(done)];
    }
    const int j = done - stages_;
    if (j < 0 || j >= total()) return std::nullopt;
    const PipelineAction& a = backwards_[static_cast<std::size_t>(j)];
    if (a.chunk == 0) return std::nullopt;
    return PipelineAction{PipelineAction::Backward, a.micro_batch, a.chunk - 1};
  }

  const int stage_, stages_, chunks_;
  const std::vector<PipelineAction> forwards_, backwards_;
};

void check_layout(int stages, int chunks, int micro_batches) {
  require(stages >= 2, "the interleaved schedule needs a pipeline of at least 2 stages, not ", stages);
  require(chunks >= 1, "a pipeline stage holds at least one model chunk, not ", chunks);
  require(micro_batches >= 0, "a negative number of micro-batches");
}
}  // namespace

int interleaved_group(int stages, int micro_batches) {
  require(micro_batches >= stages, "the interleaved schedule trains at least one micro-batch a stage: ", micro_batches,
          " micro-batches for ", stages, " pipeline stages");
  if (micro_batches % stages == 0) return stages;
  int group = stages + 1;
  while (micro_batches % group != 0 && micro_batches % group < stages) ++group;
  return group;
}

std::vector<PipelineAction> interleaved_table(int group, int chunks, int micro_batches, PipelineAction::Kind kind) {
  require(group >= 1, "micro-batch groups of ", group);
  std::vector<PipelineAction> table;
  for (int first = 0; first < micro_batches; first += group) {
    for (int i = 0; i < chunks; ++i) {
      const int chunk = kind == PipelineAction::Forward ? i : chunks - 1 - i;
      for (int mb = first; mb < std::min(first + group, micro_batches); ++mb) table.push_back({kind, mb, chunk});
    }
  }
  return table;
}

int interleaved_warmup(int stage, int stages, int chunks, int micro_batches) {
  const int group = interleaved_group(stages, micro_batches);
  return std::min(2 * (stages - stage - 1) + (chunks - 1) * group, micro_batches * chunks);
}

std::vector<PipelineAction> interleaved_order(int stage, int stages, int chunks, int micro_batches) {
  std::vector<PipelineAction> order;
  for (const InterleavedStep& step : interleaved_steps(stage, stages, chunks, micro_batches, false)) {
    if (step.forward) order.push_back(*step.forward);
    if (step.backward) order.push_back(*step.backward);
  }
  return order;
}

std::vector<InterleavedStep> interleaved_steps(int stage, int stages, int chunks, int micro_batches,
                                               bool forward_only) {
  check_layout(stages, chunks, micro_batches);
  constexpr std::nullopt_t none = std::nullopt;
  std::vector<InterleavedStep> steps;
  if (forward_only) {
    const StepPlanner plan(stage, stages, chunks, micro_batches, stages);
    for (int done = 0; done <= plan.total(); ++done) {
      InterleavedStep step = plan.step(done > 0 ? std::optional(done - 1) : none, none, none, none);
      step.receive_input = plan.next_input(done);
      steps.push_back(step);
    }
    return steps;
  }
  const int warmup = interleaved_warmup(stage, stages, chunks, micro_batches);
  const StepPlanner plan(stage, stages, chunks, micro_batches, interleaved_group(stages, micro_batches));
  const int total = plan.total();
  const bool all_warmup = warmup == total;
  steps.push_back(plan.step(none, none, 0, none));
  // The last warm-up exchange also brings the first backward's output gradient; when every
  // forward is a warm-up one, an exchange of its own does.
  for (int k = 0; k < warmup; ++k) {
    steps.push_back(plan.step(k, none, k + 1, k + 1 == warmup && !all_warmup ? std::optional(0) : none));
  }
  for (int b = 0; b + warmup < total; ++b) steps.push_back(plan.step(b + warmup, b, b + warmup + 1, b + 1));
  if (all_warmup) steps.push_back(plan.step(none, none, none, 0));
  for (int b = total - warmup; b < total; ++b) steps.push_back(plan.step(none, b, none, b + 1));
  return steps;
}

std::vector<PassAction> interleaved_pass(const std::vector<InterleavedStep>& steps, bool overlap) {
  std::vector<PassAction> pass;
  // Whether transfers of each kind (Activations, Gradients) are posted and not yet waited for.
  bool pending[2] = {false, false};
  const auto wait = [&](PassAction::Transfers which) {
    if (pending[which]) pass.push_back({PassAction::Wait, 0, which});
    pending[which] = false;
  };
  // One direction of step k: its computation, after the transfers of its kind; then its own posted.
  const auto half = [&](int k, bool computes, PassAction::Kind kind, bool posts, PassAction::Transfers which) {
    if (computes) {
      wait(which);
      pass.push_back({kind, k});
    }
    if (posts) {
      pass.push_back({PassAction::Post, k, which});
      pending[which] = true;
    }
  };
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const InterleavedStep& step = steps[i];
    const int k = static_cast<int>(i);
    const bool activations = step.send_output || step.receive_input.has_value();
    const bool gradients = step.send_grad || step.receive_grad.has_value();
    if (!overlap) {
      if (step.forward) pass.push_back({PassAction::Forward, k});
      if (step.backward) pass.push_back({PassAction::Backward, k});
      if (activations || gradients) {
        pass.push_back({PassAction::Post, k, PassAction::Both});
        pass.push_back({PassAction::Wait, 0, PassAction::Both});
      }
      continue;
    }
    half(k, step.forward.has_value(), PassAction::Forward, activations, PassAction::Activations);
    half(k, step.backward.has_value(), PassAction::Backward, gradients, PassAction::Gradients);
  }
  wait(PassAction::Activations);
  wait(PassAction::Gradients);
  return pass;
}

void forward_backward_pipelining_with_interleaving(Communicator& pp, int micro_batches, PipelineStage& stage,
                                                   bool overlap) {
  check_layout(pp.size(), stage.chunks(), micro_batches);
  InterleavedRun(pp, stage).run(interleaved_steps(pp.rank(), pp.size(), stage.chunks(), micro_batches, false), overlap);
}

void forward_pipelining_with_interleaving(Communicator& pp, int micro_batches, PipelineStage& stage, bool overlap) {
  InterleavedRun(pp, stage).run(interleaved_steps(pp.rank(), pp.size(), stage.chunks(), micro_batches, true), overlap);
}

}  // namespace spin::parallel
