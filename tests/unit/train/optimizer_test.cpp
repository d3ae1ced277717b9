#include "train/optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "common/test_util.h"
#include "common/tiny_model.h"
#include "kernels/cpu/cpu_kernels.h"
#include "parallel/job_errors.h"

namespace spin::train {
namespace {

struct OneRank {
  parallel::SelfCommunicator world;
  parallel::ProcessGrid grid{world, {1, 1, 1}};
  model::ModelConfig config = testing::tiny_config();
  model::TpDims dims = model::tp_dims(config, 0, 1);
  model::ModelWeights params{config, dims};
  model::ModelWeights grads{config, dims};
  kernels::CpuKernels cpu;

  OneRank() {
    params.init_random(1, 0.1f);
    const auto g = testing::random_vector(static_cast<std::size_t>(grads.flat().numel()), 2);
    std::copy(g.begin(), g.end(), grads.flat().f32());
  }
};

TEST(Optimizer, NormCountsEveryParameterClipsAndSkipsDecayOnNorms) {
  OneRank r;
  double want = 0.0;
  for (const ShardedTensor& t : r.grads.sharded_state_dict())
    for (std::int64_t i = 0; i < t.local.numel(); ++i) want += double(t.local.f32()[i]) * t.local.f32()[i];
  want = std::sqrt(want);  // the alignment gaps between tensors are not counted

  OptimizerConfig c;
  c.clip_grad = 1.0;
  c.weight_decay = 0.5f;
  const model::ModelWeights before = [&] {
    model::ModelWeights copy(r.config, r.dims);
    copy.copy_from(r.params);
    return copy;
  }();
  Optimizer opt(c, r.grid, r.params, r.grads, r.cpu);
  const OptimizerStep s = opt.step(0.01);
  EXPECT_TRUE(s.applied);
  EXPECT_NEAR(s.grad_norm, want, 1e-12 * want);

  // Each element moved as AdamW with the clipped gradient and its decay class says.
  const float scale = static_cast<float>(1.0 / (want + 1e-6));
  for (const ShardedTensor& t : r.params.sharded_state_dict()) {
    const bool norm = t.global_shape.size() == 1;
    const std::int64_t offset = t.local.f32() - r.params.flat().f32();
    float p = before.flat().f32()[offset], g = r.grads.flat().f32()[offset], m = 0, v = 0;
    const kernels::Kernels::UpdateRange one{0, 1, !norm};
    r.cpu.adamw_update(&p, nullptr, &g, &m, &v, &one, 1, {0.01f, 0.9f, 0.999f, 1e-8f, 0.5f, scale, 1});
    EXPECT_FLOAT_EQ(r.params.flat().f32()[offset], p) << t.name;
  }
}

// Mixed precision: the products' bf16 copy is the rounding of the new float32 values after a
// step -- written by the AdamW pass itself (plain), or refreshed after the all-gather
// (distributed) -- gaps and all.
TEST(Optimizer, StepLeavesTheBf16CopyEqualToTheRoundedMasters) {
  for (const bool distributed : {false, true}) {
    OneRank r;
    r.params.enable_bf16(r.cpu);
    const std::vector<std::uint16_t> stale(r.params.flat_bf16().bf16(),
                                           r.params.flat_bf16().bf16() + r.params.flat().numel());
    OptimizerConfig c;
    c.distributed = distributed;
    c.weight_decay = 0.1f;
    Optimizer opt(c, r.grid, r.params, r.grads, r.cpu);
    ASSERT_TRUE(opt.step(0.01).applied);
    std::int64_t changed = 0;
    for (std::int64_t i = 0; i < r.params.flat().numel(); ++i) {
      const std::uint16_t got = r.params.flat_bf16().bf16()[i];
      ASSERT_EQ(got, f32_to_bf16(r.params.flat().f32()[i])) << "element " << i << ", distributed " << distributed;
      changed += got != stale[static_cast<std::size_t>(i)];
    }
    EXPECT_GT(changed, r.params.flat().numel() / 2);  // the step did move the copy
  }
}

TEST(Optimizer, NonFiniteStepsAreSkippedThenStopTheRun) {
  OneRank r;
  OptimizerConfig c;
  c.max_nonfinite_in_a_row = 3;
  Optimizer opt(c, r.grid, r.params, r.grads, r.cpu);
  const model::ModelWeights& p = r.params;
  const float first = p.flat().f32()[0];
  r.grads.layers[0].q_proj.f32()[5] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(opt.step(0.01).applied);
  EXPECT_FALSE(opt.step(0.01, /*loss_is_finite=*/false).applied);
  EXPECT_EQ(p.flat().f32()[0], first);
  EXPECT_EQ(opt.steps_taken(), 0);
  try {
    opt.step(0.01);
    FAIL() << "expected the third non-finite step in a row to stop the run";
  } catch (const parallel::CollectiveError& e) {
    EXPECT_NE(std::string(e.what()).find("3 consecutive steps"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace spin::train
