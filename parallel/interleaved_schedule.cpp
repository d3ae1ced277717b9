// Interleaved 1F1B (pipeline_schedule.h). Every stage runs the same table of forwards and of
// backwards; what differs is how far ahead its forwards run (interleaved_warmup). Each
// forward, and each forward-backward pair in the steady state, is followed by one exchange that
// sends what was just computed and receives what the neighbours computed at their exchange of
// the same count: the previous rank runs one forward ahead of this one, so it sends the input
// of this rank's next forward; the last rank runs p - 1 forwards behind the first, so what it
// sends the first rank is the output of forward k + 1 - p, which in whole groups of p is again
// the input of the first rank's next forward, unless that forward is a chunk 0 (whose input is
// the data). Gradients mirror this. Received buffers wait in a queue per chunk; a chunk's
// micro-batches arrive in order, which is how a receive knows its size.
#include <deque>
#include <utility>

#include "core/error.h"
#include "core/profile.h"
#include "core/tensor.h"
#include "parallel/pipeline_schedule.h"  // declares what this file defines

namespace spin::parallel {

namespace {
constexpr int kActivationTag = 13;
constexpr int kGradientTag = 14;
constexpr int kNothing = -1;  // no chunk: nothing to receive

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

  // One exchange, every part optional: `output` (micro-batch output_mb) to the next rank,
  // `grad_input` (grad_mb) to the previous one, and receives of the activation for chunk
  // `input_chunk` from the previous rank and of the gradient for chunk `grad_chunk` from the next.
  void exchange(std::span<const float> output, int output_mb, std::span<const float> grad_input, int grad_mb,
                int input_chunk, int grad_chunk) {
    std::vector<P2POp> ops;
    if (!output.empty()) {
      check_boundary(stage_, pp_.rank(), output, output_mb, "output");
      ops.push_back(P2POp::send(output.data(), output.size(), next_, kActivationTag));
    }
    if (!grad_input.empty()) {
      check_boundary(stage_, pp_.rank(), grad_input, grad_mb, "input gradient");
      ops.push_back(P2POp::send(grad_input.data(), grad_input.size(), prev_, kGradientTag));
    }
    if (input_chunk != kNothing) ops.push_back(receive(inputs_, input_chunk, prev_, kActivationTag));
    if (grad_chunk != kNothing) ops.push_back(receive(grads_, grad_chunk, next_, kGradientTag));
    if (ops.empty()) return;
    const profile::Range range("p2p", "ops", static_cast<std::int64_t>(ops.size()));
    pp_.exchange(ops);
  }

  // The oldest received buffer of the chunk, which must be micro-batch mb's; give it back with
  // recycle() once the stage has used it.
  Tensor take_input(int chunk, int mb) { return take(inputs_, chunk, mb, "activation"); }
  Tensor take_grad(int chunk, int mb) { return take(grads_, chunk, mb, "gradient"); }
  void recycle(Tensor buffer) {
    if (buffer.defined()) free_.push_back(std::move(buffer));
  }
  std::span<const float> view(const Tensor& buffer, int mb) const { return {buffer.f32(), stage_.boundary_size(mb)}; }

 private:
  struct Queue {
    std::deque<Tensor> buffers;  // received, not yet taken
    int received = 0;            // micro-batches received so far: the next one's index
    int taken = 0;
  };

  P2POp receive(std::vector<Queue>& queues, int chunk, int peer, int tag) {
    Queue& q = queues[static_cast<std::size_t>(chunk)];
    const std::size_t n = stage_.boundary_size(q.received++);
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
};

// One stage's run of the tables: the forwards and backwards with the buffers they take.
class InterleavedRun {
 public:
  // `whole_groups`: the micro-batches must fill groups of p (the forward-backward pass).
  InterleavedRun(Communicator& pp, int micro_batches, PipelineStage& stage, bool whole_groups)
      : stage_(stage),
        links_(pp, stage),
        stages_(pp.size()),
        chunks_(stage.chunks()),
        first_(pp.rank() == 0),
        last_(pp.rank() == pp.size() - 1) {
    require(stages_ >= 2, "the interleaved schedule needs a pipeline of at least 2 stages, not ", stages_);
    require(chunks_ >= 1, "a pipeline stage holds at least one model chunk, not ", chunks_);
    require(micro_batches >= 0, "a negative number of micro-batches");
    require(!whole_groups || micro_batches % stages_ == 0, "the interleaved schedule runs the micro-batches in ",
            "groups of the pipeline's ", stages_, " stages: ", micro_batches, " micro-batches are not a multiple of ",
            stages_);
    forwards_ = interleaved_table(stages_, chunks_, micro_batches, PipelineAction::Forward);
    backwards_ = interleaved_table(stages_, chunks_, micro_batches, PipelineAction::Backward);
  }

  int total() const { return static_cast<int>(forwards_.size()); }
  RingLinks& links() { return links_; }

  // Runs forward k; returns its output for the next rank (empty for the model's last chunk).
  std::span<const float> forward(int k) {
    const PipelineAction& a = forwards_[static_cast<std::size_t>(k)];
    const bool model_first = first_ && a.chunk == 0;
    Tensor input = model_first ? Tensor() : links_.take_input(a.chunk, a.micro_batch);
    std::span<const float> output;
    {
      const profile::Range range("forward", "mb", a.micro_batch);
      const std::span<const float> in = model_first ? std::span<const float>() : links_.view(input, a.micro_batch);
      output = stage_.forward(a.chunk, a.micro_batch, in);
    }
    links_.recycle(std::move(input));
    return last_ && a.chunk == chunks_ - 1 ? std::span<const float>() : output;
  }
  // Runs backward k; returns its input gradient for the previous rank (empty for chunk 0 of
  // the first stage).
  std::span<const float> backward(int k) {
    const PipelineAction& a = backwards_[static_cast<std::size_t>(k)];
    const bool model_last = last_ && a.chunk == chunks_ - 1;
    Tensor grad = model_last ? Tensor() : links_.take_grad(a.chunk, a.micro_batch);
    std::span<const float> grad_input;
    {
      const profile::Range range("backward", "mb", a.micro_batch);
      const std::span<const float> in = model_last ? std::span<const float>() : links_.view(grad, a.micro_batch);
      grad_input = stage_.backward(a.chunk, a.micro_batch, in);
    }
    links_.recycle(std::move(grad));
    return first_ && a.chunk == 0 ? std::span<const float>() : grad_input;
  }
  int forward_mb(int k) const { return forwards_[static_cast<std::size_t>(k)].micro_batch; }
  int backward_mb(int k) const { return backwards_[static_cast<std::size_t>(k)].micro_batch; }

  // The chunk whose input arrives at the exchange after forward k (k = -1: before the first):
  // that of forward k + 1 -- sent by the previous rank -- unless it is the model's first chunk.
  int input_chunk_after(int k) const {
    if (k + 1 >= total()) return kNothing;
    const int chunk = forwards_[static_cast<std::size_t>(k + 1)].chunk;
    return first_ && chunk == 0 ? kNothing : chunk;
  }
  // The chunk whose output gradient arrives at the exchange after backward k: that of backward
  // k + 1 unless it is the model's last chunk.
  int grad_chunk_after(int k) const {
    if (k + 1 >= total()) return kNothing;
    const int chunk = backwards_[static_cast<std::size_t>(k + 1)].chunk;
    return last_ && chunk == chunks_ - 1 ? kNothing : chunk;
  }

 private:
  PipelineStage& stage_;
  RingLinks links_;
  const int stages_, chunks_;
  const bool first_, last_;
  std::vector<PipelineAction> forwards_, backwards_;
};
}  // namespace

std::vector<PipelineAction> interleaved_table(int stages, int chunks, int micro_batches, PipelineAction::Kind kind) {
  std::vector<PipelineAction> table;
  for (int group = 0; group < micro_batches; group += stages) {
    for (int i = 0; i < chunks; ++i) {
      const int chunk = kind == PipelineAction::Forward ? i : chunks - 1 - i;
      for (int mb = group; mb < std::min(group + stages, micro_batches); ++mb) table.push_back({kind, mb, chunk});
    }
  }
  return table;
}

int interleaved_warmup(int stage, int stages, int chunks, int micro_batches) {
  const int total = micro_batches * chunks;
  if (micro_batches == stages) return total;
  return std::min(2 * (stages - stage - 1) + (chunks - 1) * stages, total);
}

std::vector<PipelineAction> interleaved_order(int stage, int stages, int chunks, int micro_batches) {
  using A = PipelineAction;
  const std::vector<A> forwards = interleaved_table(stages, chunks, micro_batches, A::Forward);
  const std::vector<A> backwards = interleaved_table(stages, chunks, micro_batches, A::Backward);
  const int total = static_cast<int>(forwards.size());
  const int warmup = interleaved_warmup(stage, stages, chunks, micro_batches);
  std::vector<A> order(forwards.begin(), forwards.begin() + warmup);
  for (int k = warmup; k < total; ++k) {
    order.push_back(forwards[static_cast<std::size_t>(k)]);
    order.push_back(backwards[static_cast<std::size_t>(k - warmup)]);
  }
  order.insert(order.end(), backwards.begin() + (total - warmup), backwards.end());
  return order;
}

void forward_backward_pipelining_with_interleaving(Communicator& pp, int micro_batches, PipelineStage& stage) {
  require(micro_batches >= 1, "the pipeline needs at least one micro-batch");
  InterleavedRun run(pp, micro_batches, stage, true);
  RingLinks& links = run.links();
  const int total = run.total();
  const int warmup = interleaved_warmup(pp.rank(), pp.size(), stage.chunks(), micro_batches);
  const bool all_warmup = warmup == total;
  const std::span<const float> none;

  links.exchange(none, 0, none, 0, run.input_chunk_after(-1), kNothing);
  for (int k = 0; k < warmup; ++k) {
    const std::span<const float> output = run.forward(k);
    // The last warm-up exchange also brings the first backward's gradient.
    const int grad_chunk = k + 1 == warmup && !all_warmup ? run.grad_chunk_after(-1) : kNothing;
    links.exchange(output, run.forward_mb(k), none, 0, run.input_chunk_after(k), grad_chunk);
  }
  for (int b = 0; b + warmup < total; ++b) {
    const int f = b + warmup;
    const std::span<const float> output = run.forward(f);
    const std::span<const float> grad_input = run.backward(b);
    links.exchange(output, run.forward_mb(f), grad_input, run.backward_mb(b), run.input_chunk_after(f),
                   run.grad_chunk_after(b));
  }
  if (all_warmup) links.exchange(none, 0, none, 0, kNothing, run.grad_chunk_after(-1));
  for (int b = total - warmup; b < total; ++b) {
    const std::span<const float> grad_input = run.backward(b);
    links.exchange(none, 0, grad_input, run.backward_mb(b), kNothing, run.grad_chunk_after(b));
  }
}

void forward_pipelining_with_interleaving(Communicator& pp, int micro_batches, PipelineStage& stage) {
  InterleavedRun run(pp, micro_batches, stage, false);
  const std::span<const float> none;
  run.links().exchange(none, 0, none, 0, run.input_chunk_after(-1), kNothing);
  for (int k = 0; k < run.total(); ++k) {
    const std::span<const float> output = run.forward(k);
    run.links().exchange(output, run.forward_mb(k), none, 0, run.input_chunk_after(k), kNothing);
  }
}

}  // namespace spin::parallel
