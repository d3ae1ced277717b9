// Run with 4 ranks. The 1F1B schedule on real pipelines of 2 and 4 stages: the order of
// forwards and backwards per stage, the bound on live activations, and the data that crosses
// stage boundaries (micro-batches of different sizes).
#include "parallel/pipeline_schedule.h"

#include <gtest/gtest.h>

#include "mpi/mpi_test.h"
#include "parallel/process_grid.h"

namespace spin::parallel {
namespace {

using spin::testing::mpi_world;

// A stage whose output for micro-batch mb is (mb, stage, element) encoded as numbers, so every
// neighbour can check it received the right buffer; the gradient is the negated encoding.
class RecordingStage : public PipelineStage {
 public:
  RecordingStage(int stage, int stages) : stage_(stage), stages_(stages) {}

  std::size_t boundary_size(int mb) const override { return static_cast<std::size_t>(3 + mb); }
  std::span<const float> forward(int mb, std::span<const float> input) override {
    trace.push_back({PipelineAction::Forward, mb});
    peak_live = std::max(peak_live, ++live_);
    if (stage_ == 0) {
      EXPECT_TRUE(input.empty());
    } else {
      EXPECT_EQ(input.size(), boundary_size(mb));
      for (std::size_t j = 0; j < input.size(); ++j) EXPECT_EQ(input[j], code(mb, stage_ - 1, j));
    }
    out_.resize(boundary_size(mb));
    for (std::size_t j = 0; j < out_.size(); ++j) out_[j] = code(mb, stage_, j);
    return out_;
  }
  std::span<const float> backward(int mb, std::span<const float> grad_output) override {
    trace.push_back({PipelineAction::Backward, mb});
    --live_;
    if (stage_ == stages_ - 1) {
      EXPECT_TRUE(grad_output.empty());
    } else {
      EXPECT_EQ(grad_output.size(), boundary_size(mb));
      for (std::size_t j = 0; j < grad_output.size(); ++j)
        EXPECT_EQ(grad_output[j], -code(mb, stage_ + 1, j));
    }
    grad_.resize(boundary_size(mb));
    for (std::size_t j = 0; j < grad_.size(); ++j) grad_[j] = -code(mb, stage_, j);
    return grad_;
  }

  std::vector<PipelineAction> trace;
  int peak_live = 0;

 private:
  static float code(int mb, int stage, std::size_t j) {
    return static_cast<float>(1000 * mb + 10 * stage + static_cast<int>(j) + 1);
  }
  int stage_, stages_;
  int live_ = 0;
  std::vector<float> out_, grad_;
};

TEST(OneFOneB, OrderIsWarmupSteadyCooldown) {
  using A = PipelineAction;
  // 4 stages, 6 micro-batches: stage 0 warms up with 3 forwards.
  EXPECT_EQ(one_f_one_b_order(0, 4, 6),
            (std::vector<A>{{A::Forward, 0}, {A::Forward, 1}, {A::Forward, 2}, {A::Forward, 3},
                            {A::Backward, 0}, {A::Forward, 4}, {A::Backward, 1}, {A::Forward, 5},
                            {A::Backward, 2}, {A::Backward, 3}, {A::Backward, 4}, {A::Backward, 5}}));
  // The last stage alternates from the start.
  EXPECT_EQ(one_f_one_b_order(3, 4, 2),
            (std::vector<A>{{A::Forward, 0}, {A::Backward, 0}, {A::Forward, 1}, {A::Backward, 1}}));
  // Fewer micro-batches than stages: all forwards, then all backwards.
  EXPECT_EQ(one_f_one_b_order(0, 4, 2),
            (std::vector<A>{{A::Forward, 0}, {A::Forward, 1}, {A::Backward, 0}, {A::Backward, 1}}));
}

TEST(OneFOneB, RealPipelinesFollowTheOrderBoundLiveActivationsAndDeliverTheRightBuffers) {
  for (int stages : {2, 4}) {
    ProcessGrid grid(mpi_world(), {1, stages, 0});
    for (int m = 1; m <= 8; ++m) {
      RecordingStage stage(grid.pp_rank(), stages);
      forward_backward_pipelining_without_interleaving(grid.pp(), m, stage);
      EXPECT_EQ(stage.trace, one_f_one_b_order(grid.pp_rank(), stages, m))
          << "pp " << stages << ", m " << m << ", stage " << grid.pp_rank();
      EXPECT_EQ(stage.peak_live, std::min(stages - grid.pp_rank(), m))
          << "pp " << stages << ", m " << m << ", stage " << grid.pp_rank();
    }
  }
}

TEST(ForwardPipelining, DeliversEveryMicroBatchInOrderWithoutBackwards) {
  for (int stages : {2, 4}) {
    ProcessGrid grid(mpi_world(), {1, stages, 0});
    RecordingStage stage(grid.pp_rank(), stages);
    forward_pipelining(grid.pp(), 5, stage);
    std::vector<PipelineAction> want;
    for (int mb = 0; mb < 5; ++mb) want.push_back({PipelineAction::Forward, mb});
    EXPECT_EQ(stage.trace, want);
  }
}

}  // namespace
}  // namespace spin::parallel
