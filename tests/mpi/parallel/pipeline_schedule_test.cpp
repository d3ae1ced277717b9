// Run with 4 ranks. The 1F1B and interleaved 1F1B schedules on real pipelines of 2 and 4 stages:
// the order of forwards and backwards per stage, the bound on live activations, and the data
// that crosses stage boundaries (micro-batches of different sizes, through every model chunk).
#include "parallel/pipeline_schedule.h"

#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "mpi/mpi_test.h"
#include "parallel/process_grid.h"

namespace spin::parallel {
namespace {

using spin::testing::mpi_world;

// A stage whose output for micro-batch mb is (mb, virtual stage, element) encoded as numbers, so
// every neighbour can check it received the right buffer; the gradient is the negated encoding.
// Chunk c of stage s is virtual stage c * stages + s.
class RecordingStage : public PipelineStage {
 public:
  // `base`: floats crossing a boundary for micro-batch 0 (base + mb for micro-batch mb).
  RecordingStage(int stage, int stages, int chunks = 1, std::size_t base = 3)
      : stage_(stage), stages_(stages), chunks_(chunks), base_(base) {}

  int chunks() const override { return chunks_; }
  std::size_t boundary_size(int mb) const override { return base_ + static_cast<std::size_t>(mb); }
  std::span<const float> forward(int chunk, int mb, std::span<const float> input) override {
    trace.push_back({PipelineAction::Forward, mb, chunk});
    peak_live = std::max(peak_live, ++live_);
    const int v = virtual_stage(chunk);
    if (v == 0) {
      EXPECT_TRUE(input.empty());
    } else {
      EXPECT_EQ(input.size(), boundary_size(mb));
      for (std::size_t j = 0; j < input.size(); ++j) EXPECT_EQ(input[j], code(mb, v - 1, j)) << "mb " << mb;
    }
    out_.resize(boundary_size(mb));
    for (std::size_t j = 0; j < out_.size(); ++j) out_[j] = code(mb, v, j);
    return out_;
  }
  std::span<const float> backward(int chunk, int mb, std::span<const float> grad_output) override {
    trace.push_back({PipelineAction::Backward, mb, chunk});
    --live_;
    const int v = virtual_stage(chunk);
    if (v == stages_ * chunks_ - 1) {
      EXPECT_TRUE(grad_output.empty());
    } else {
      EXPECT_EQ(grad_output.size(), boundary_size(mb));
      for (std::size_t j = 0; j < grad_output.size(); ++j) {
        EXPECT_EQ(grad_output[j], -code(mb, v + 1, j)) << "mb " << mb;
      }
    }
    grad_.resize(boundary_size(mb));
    for (std::size_t j = 0; j < grad_.size(); ++j) grad_[j] = -code(mb, v, j);
    return grad_;
  }

  std::vector<PipelineAction> trace;
  int peak_live = 0;

 private:
  int virtual_stage(int chunk) const { return chunk * stages_ + stage_; }
  static float code(int mb, int stage, std::size_t j) {
    return static_cast<float>(1000 * mb + 10 * stage + static_cast<int>(j) + 1);
  }
  int stage_, stages_, chunks_;
  std::size_t base_;
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

TEST(Interleaved, TablesRunGroupsOfStagesThroughTheChunks) {
  using A = PipelineAction;
  // 2 stages, 2 chunks, 4 micro-batches: groups {0, 1} and {2, 3}.
  EXPECT_EQ(interleaved_table(2, 2, 4, A::Forward), (std::vector<A>{{A::Forward, 0, 0},
                                                                    {A::Forward, 1, 0},
                                                                    {A::Forward, 0, 1},
                                                                    {A::Forward, 1, 1},
                                                                    {A::Forward, 2, 0},
                                                                    {A::Forward, 3, 0},
                                                                    {A::Forward, 2, 1},
                                                                    {A::Forward, 3, 1}}));
  EXPECT_EQ(interleaved_table(2, 2, 4, A::Backward), (std::vector<A>{{A::Backward, 0, 1},
                                                                     {A::Backward, 1, 1},
                                                                     {A::Backward, 0, 0},
                                                                     {A::Backward, 1, 0},
                                                                     {A::Backward, 2, 1},
                                                                     {A::Backward, 3, 1},
                                                                     {A::Backward, 2, 0},
                                                                     {A::Backward, 3, 0}}));
  // Megatron's warm-up: 2 (p - s - 1) + (v - 1) N, N = p here; everything when that is as many or more.
  EXPECT_EQ(interleaved_warmup(0, 4, 2, 8), 10);
  EXPECT_EQ(interleaved_warmup(3, 4, 2, 8), 4);
  EXPECT_EQ(interleaved_warmup(3, 4, 3, 4), 8);
  EXPECT_EQ(interleaved_warmup(0, 4, 3, 4), 12);
  // 6 micro-batches over 4 stages: one group of 6.
  EXPECT_EQ(interleaved_warmup(3, 4, 2, 6), 6);
  EXPECT_EQ(interleaved_warmup(2, 4, 2, 6), 8);
  EXPECT_EQ(interleaved_order(1, 2, 2, 4), (std::vector<A>{{A::Forward, 0, 0},
                                                           {A::Forward, 1, 0},
                                                           {A::Forward, 0, 1},
                                                           {A::Backward, 0, 1},
                                                           {A::Forward, 1, 1},
                                                           {A::Backward, 1, 1},
                                                           {A::Forward, 2, 0},
                                                           {A::Backward, 0, 0},
                                                           {A::Forward, 3, 0},
                                                           {A::Backward, 1, 0},
                                                           {A::Forward, 2, 1},
                                                           {A::Backward, 2, 1},
                                                           {A::Forward, 3, 1},
                                                           {A::Backward, 3, 1},
                                                           {A::Backward, 2, 0},
                                                           {A::Backward, 3, 0}}));
}

TEST(Interleaved, RealRingsFollowTheOrderBoundLiveActivationsAndDeliverTheRightBuffers) {
  for (int stages : {2, 4}) {
    ProcessGrid grid(mpi_world(), {1, stages, 0});
    const int s = grid.pp_rank();
    for (int chunks : {1, 2, 3}) {
      for (int m = stages; m <= 3 * stages; ++m) {  // whole groups of p, and not
        for (const bool overlap : {false, true}) {
          RecordingStage stage(s, stages, chunks);
          forward_backward_pipelining_with_interleaving(grid.pp(), m, stage, overlap);
          const std::string where = "pp " + std::to_string(stages) + ", v " + std::to_string(chunks) + ", m " +
                                    std::to_string(m) + ", stage " + std::to_string(s) +
                                    (overlap ? ", overlapped" : "");
          EXPECT_EQ(stage.trace, interleaved_order(s, stages, chunks, m)) << where;
          const int warmup = interleaved_warmup(s, stages, chunks, m);
          EXPECT_EQ(stage.peak_live, std::min(warmup + 1, m * chunks)) << where;
        }
      }
    }
  }
}

// Boundaries of 400 KB, past the eager limit of Open MPI's shared-memory transport: each send then
// completes only once its receive is posted (a rendezvous, as NCCL's do), which is what the steps'
// receive placement must survive -- in whole groups of p and in larger ones. (Posting a step's sends
// before its receives, apart, passes the small-boundary rings above and hangs here: tried.) With the
// transfers overlapped, the buffers arrive while the stages compute: a forward that ran before its
// input's receive completed, or overwrote its last output before that send did, would find or send
// the wrong numbers, which the receiving stage checks.
TEST(Interleaved, LargeBoundariesGoThroughAsRendezvous) {
  ProcessGrid grid(mpi_world(), {1, 4, 0});
  const int s = grid.pp_rank();
  for (int m : {4, 5, 6, 8, 9}) {
    for (const bool overlap : {false, true}) {
      RecordingStage stage(s, 4, 2, 100000);
      forward_backward_pipelining_with_interleaving(grid.pp(), m, stage, overlap);
      EXPECT_EQ(stage.trace, interleaved_order(s, 4, 2, m)) << "m " << m << ", stage " << s << ", overlap " << overlap;
    }
  }
}

// Without backwards any number of micro-batches goes through (a last group smaller than p too:
// scoring's micro-batches are what the data gives).
TEST(Interleaved, ForwardsOnlyDeliverEveryMicroBatchThroughEveryChunk) {
  for (int stages : {2, 4}) {
    ProcessGrid grid(mpi_world(), {1, stages, 0});
    for (int chunks : {2, 3}) {
      for (int m = 0; m <= 2 * stages + 1; ++m) {
        for (const bool overlap : {false, true}) {
          RecordingStage stage(grid.pp_rank(), stages, chunks);
          forward_pipelining_with_interleaving(grid.pp(), m, stage, overlap);
          EXPECT_EQ(stage.trace, interleaved_table(stages, chunks, m, PipelineAction::Forward))
              << "pp " << stages << ", v " << chunks << ", m " << m << ", overlap " << overlap;
        }
      }
    }
  }
}

TEST(Interleaved, FewerMicroBatchesThanStagesAreRefusedOnEveryRank) {
  ProcessGrid grid(mpi_world(), {1, 4, 0});
  RecordingStage stage(grid.pp_rank(), 4, 2);
  try {
    forward_backward_pipelining_with_interleaving(grid.pp(), 3, stage);
    ADD_FAILURE() << "3 micro-batches over 4 stages ran";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("at least one micro-batch a stage: 3 micro-batches for 4 pipeline stages"),
              std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(stage.trace.empty());
}

}  // namespace
}  // namespace spin::parallel
