#include "parallel/pipeline_schedule.h"

#include <algorithm>

#include "core/error.h"
#include "core/profile.h"
#include "core/tensor.h"

namespace spin::parallel {

namespace {
constexpr int kActivationTag = 11;
constexpr int kGradientTag = 12;

// Point-to-point moves of one stage; every function is a no-op where the neighbour is missing.
class StageLinks {
 public:
  StageLinks(Communicator& pp, PipelineStage& stage)
      : pp_(pp), stage_(stage), first_(pp.rank() == 0), last_(pp.rank() == pp.size() - 1) {}

  std::span<const float> recv_forward(int mb) {
    if (first_) return {};
    const std::span<float> input = receive_buffer(input_, mb);
    const P2POp op = P2POp::recv(input.data(), input.size(), pp_.rank() - 1, kActivationTag);
    exchange({&op, 1}, mb);
    return input;
  }
  void send_forward(std::span<const float> output, int mb) {
    if (last_) return;
    check(output, mb, "output");
    const P2POp op = P2POp::send(output.data(), output.size(), pp_.rank() + 1, kActivationTag);
    exchange({&op, 1}, mb);
  }
  std::span<const float> recv_backward(int mb) {
    if (last_) return {};
    const std::span<float> grad = receive_buffer(grad_, mb);
    const P2POp op = P2POp::recv(grad.data(), grad.size(), pp_.rank() + 1, kGradientTag);
    exchange({&op, 1}, mb);
    return grad;
  }
  void send_backward(std::span<const float> grad_input, int mb) {
    if (first_) return;
    check(grad_input, mb, "input gradient");
    const P2POp op = P2POp::send(grad_input.data(), grad_input.size(), pp_.rank() - 1, kGradientTag);
    exchange({&op, 1}, mb);
  }
  // Steady state: this micro-batch's output goes on while the gradient of an earlier one
  // comes back from the same neighbour.
  std::span<const float> send_forward_recv_backward(std::span<const float> output, int send_mb,
                                                    int recv_mb) {
    if (last_) return {};
    check(output, send_mb, "output");
    const std::span<float> grad = receive_buffer(grad_, recv_mb);
    const P2POp ops[] = {P2POp::send(output.data(), output.size(), pp_.rank() + 1, kActivationTag),
                         P2POp::recv(grad.data(), grad.size(), pp_.rank() + 1, kGradientTag)};
    exchange(ops, recv_mb);
    return grad;
  }
  std::span<const float> send_backward_recv_forward(std::span<const float> grad_input,
                                                    int send_mb, int recv_mb) {
    if (first_) return {};
    check(grad_input, send_mb, "input gradient");
    const std::span<float> input = receive_buffer(input_, recv_mb);
    const P2POp ops[] = {
        P2POp::send(grad_input.data(), grad_input.size(), pp_.rank() - 1, kGradientTag),
        P2POp::recv(input.data(), input.size(), pp_.rank() - 1, kActivationTag)};
    exchange(ops, recv_mb);
    return input;
  }

 private:
  // The point-to-point moves (a receive waits for the neighbour: the bubble shows here).
  void exchange(std::span<const P2POp> ops, int mb) {
    const profile::Range range("p2p", "mb", mb);
    pp_.exchange(ops);
  }
  // `buffer` holding micro-batch mb's boundary on the stage's device (grown when too small).
  std::span<float> receive_buffer(Tensor& buffer, int mb) const {
    const std::size_t n = stage_.boundary_size(mb);
    if (!buffer.defined() || static_cast<std::size_t>(buffer.numel()) < n) {
      buffer = Tensor::zeros({static_cast<std::int64_t>(n)}, DType::F32, stage_.device());
    }
    return {buffer.f32(), n};
  }
  void check(std::span<const float> buffer, int mb, const char* what) const {
    check_boundary(stage_, pp_.rank(), buffer, mb, what);
  }

  Communicator& pp_;
  PipelineStage& stage_;
  const bool first_, last_;
  Tensor input_, grad_;  // receive buffers; a stage copies what it keeps
};

// The stage's work, each a profiling range named after it.
std::span<const float> forward(PipelineStage& stage, int mb, std::span<const float> input) {
  const profile::Range range("forward", "mb", mb);
  return stage.forward(0, mb, input);
}
std::span<const float> backward(PipelineStage& stage, int mb, std::span<const float> grad_output) {
  const profile::Range range("backward", "mb", mb);
  return stage.backward(0, mb, grad_output);
}
}  // namespace

void check_boundary(const PipelineStage& stage, int rank, std::span<const float> buffer, int mb, const char* what) {
  require(buffer.size() == stage.boundary_size(mb), "pipeline stage ", rank, ": ", what, " of micro-batch ", mb,
          " has ", buffer.size(), " floats, the boundary size is ", stage.boundary_size(mb));
}

std::vector<PipelineAction> one_f_one_b_order(int stage, int stages, int micro_batches) {
  const int warmup = std::min(stages - stage - 1, micro_batches);
  const int steady = micro_batches - warmup;
  std::vector<PipelineAction> order;
  for (int i = 0; i < warmup; ++i) order.push_back({PipelineAction::Forward, i});
  for (int i = 0; i < steady; ++i) {
    order.push_back({PipelineAction::Forward, warmup + i});
    order.push_back({PipelineAction::Backward, i});
  }
  for (int i = steady; i < micro_batches; ++i) order.push_back({PipelineAction::Backward, i});
  return order;
}

void forward_backward_pipelining_without_interleaving(Communicator& pp, int micro_batches,
                                                      PipelineStage& stage) {
  require(micro_batches >= 1, "the pipeline needs at least one micro-batch");
  StageLinks links(pp, stage);
  const int warmup = std::min(pp.size() - pp.rank() - 1, micro_batches);
  const int steady = micro_batches - warmup;
  int next_forward = 0;
  int next_backward = 0;

  for (int i = 0; i < warmup; ++i, ++next_forward) {
    const auto input = links.recv_forward(next_forward);
    links.send_forward(forward(stage, next_forward, input), next_forward);
  }
  std::span<const float> input;
  if (steady > 0) input = links.recv_forward(next_forward);
  for (int i = 0; i < steady; ++i, ++next_forward, ++next_backward) {
    const auto output = forward(stage, next_forward, input);
    const auto grad_output = links.send_forward_recv_backward(output, next_forward, next_backward);
    const auto grad_input = backward(stage, next_backward, grad_output);
    if (i + 1 == steady) {
      links.send_backward(grad_input, next_backward);
    } else {
      input = links.send_backward_recv_forward(grad_input, next_backward, next_forward + 1);
    }
  }
  for (; next_backward < micro_batches; ++next_backward) {
    const auto grad_output = links.recv_backward(next_backward);
    links.send_backward(backward(stage, next_backward, grad_output), next_backward);
  }
}

void forward_pipelining(Communicator& pp, int micro_batches, PipelineStage& stage) {
  StageLinks links(pp, stage);
  for (int mb = 0; mb < micro_batches; ++mb) {
    const auto input = links.recv_forward(mb);
    links.send_forward(forward(stage, mb, input), mb);
  }
}

}  // namespace spin::parallel
