// Run with 8 ranks. The central property of the training engine: the same optimizer steps on
// the same global batches give the same losses and final weights for every (TP, PP, DP) layout,
// with and without the distributed optimizer, tied and untied embeddings, to 1e-5 relative of
// the single-rank run; and for every split of a global batch into micro-batches.
#include <gtest/gtest.h>

#include "checkpoint/hf_writer.h"
#include "common/test_util.h"
#include "common/tiny_model.h"
#include "core/error.h"
#include "data/batch_plan.h"
#include "kernels/cpu/cpu_kernels.h"
#include "mpi/mpi_test.h"
#include "parallel/process_grid.h"
#include "train/lr_schedule.h"
#include "train/pipeline_trainer.h"

namespace spin::train {
namespace {

using spin::testing::mpi_world;

struct Setup {
  parallel::Layout layout;
  bool distributed = false;
  bool tie = false;
  std::int64_t micro_batch = 2;
  std::vector<std::int64_t> pp_layers = {};
};

struct Result {
  std::vector<double> losses;
  std::vector<double> grad_norms;
  std::vector<ckpt::FullTensor> weights;  // on each replica's model-parallel rank 0
};

// 16 sequences of 3..12 tokens with prompts of 1..4 tokens; global batches of 8.
std::vector<model::Sequence> dataset() {
  std::vector<model::Sequence> data;
  for (int i = 0; i < 16; ++i) {
    const auto len = static_cast<std::size_t>(3 + (i * 7) % 10);
    data.push_back({testing::random_ids(len, 37, 100 + static_cast<std::uint32_t>(i)), 1 + i % 4});
  }
  return data;
}

Result train(parallel::Communicator& world, const Setup& s, int steps = 5) {
  const parallel::ProcessGrid grid(world, s.layout);
  testing::TinyShape shape;
  shape.layers = 4;
  shape.tie = s.tie;
  const model::ModelConfig config = testing::tiny_config(shape);
  const model::StageLayers stage = model::stage_layers(
      model::split_layers(config.num_layers, grid.pp_size(), s.pp_layers), grid.pp_rank());
  const model::TpDims dims = model::tp_dims(config, grid.tp_rank(), grid.tp_size());
  const std::int64_t pad = s.distributed ? grid.dp_size() : 1;
  model::ModelWeights weights(config, dims, stage, pad);
  model::ModelWeights grads(config, dims, stage, pad);
  testing::init_tiny_weights(weights, 3, 0.1f);
  const kernels::CpuKernels cpu;
  const model::Transformer transformer(config, dims, stage, grid.tp(), cpu);
  OptimizerConfig oc;
  oc.beta2 = 0.95f;
  // AdamW divides each gradient by its own running RMS, so an element whose exact gradient is
  // ~0 moves by about lr * g / (|g| + eps), with g decided by float rounding -- which differs
  // between layouts (other summation orders). With eps = 1e-8 that alone moved a few weights
  // of the tied model by 3e-5 after one step. eps = 1e-4 bounds the amplification of rounding
  // to lr * 1e-10 / eps without changing what is compared; losses and gradient norms do not
  // depend on it.
  oc.eps = 1e-4f;
  oc.weight_decay = 0.1f;
  oc.clip_grad = 0.5;  // the tiny model's norms exceed it: clipping is exercised
  oc.distributed = s.distributed;
  oc.decay_embeddings = false;
  Optimizer optimizer(oc, grid, weights, grads, cpu);
  PipelineTrainer trainer(grid, transformer, weights, grads, optimizer);
  LrSchedule lr{LrDecay::Cosine, 3e-2, 3e-3, 2, 5};

  const auto data = dataset();
  const data::BatchPlan plan(16, 8, s.micro_batch, grid.dp_size(), 77);
  Result r;
  for (int step = 0; step < steps; ++step) {
    const std::int64_t epoch = step / plan.batches_per_epoch();
    const std::int64_t index = step % plan.batches_per_epoch();
    std::int64_t response_tokens = 0;
    for (std::int64_t i : plan.global_batch(epoch, index)) {
      const auto& seq = data[static_cast<std::size_t>(i)];
      response_tokens += static_cast<std::int64_t>(seq.tokens.size()) - seq.mask_from;
    }
    std::vector<model::TokenBatch> micro;
    for (const auto& ids : plan.micro_batches(epoch, index, grid.dp_rank())) {
      std::vector<model::Sequence> seqs;
      for (std::int64_t i : ids) seqs.push_back(data[static_cast<std::size_t>(i)]);
      micro.push_back(model::TokenBatch::pack(seqs));
    }
    SftLoss loss(response_tokens);
    const StepMetrics m = trainer.step(micro, loss, lr.at(step));
    EXPECT_TRUE(m.applied);
    // 1F1B's bound on live activations, in the real model: min(pp - stage, micro-batches).
    EXPECT_EQ(trainer.peak_live_micro_batches(),
              std::min(grid.pp_size() - grid.pp_rank(), static_cast<int>(micro.size())));
    r.losses.push_back(m.loss);
    r.grad_norms.push_back(m.grad_norm);
  }
  r.weights = ckpt::gather_model(weights.sharded_state_dict(), grid.mp());
  return r;
}

void expect_same(const Result& got, const Result& want, const std::string& what) {
  testing::expect_close(got.losses, want.losses, 1e-5, 1e-7, (what + " losses").c_str());
  testing::expect_close(got.grad_norms, want.grad_norms, 1e-5, 1e-7, (what + " grad norms").c_str());
  if (got.weights.empty()) return;  // not a replica's model-parallel rank 0
  ASSERT_EQ(got.weights.size(), want.weights.size()) << what;
  for (std::size_t t = 0; t < want.weights.size(); ++t) {
    ASSERT_EQ(got.weights[t].name, want.weights[t].name) << what;
    // Relative in the L2 sense per tensor, plus a loose element-wise bound so that one wrong
    // row cannot hide in a large tensor.
    const auto& a = got.weights[t].data;
    const auto& b = want.weights[t].data;
    double scale = 0.0, diff = 0.0;
    for (std::size_t i = 0; i < b.size(); ++i) {
      scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
      diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    }
    EXPECT_LE(testing::relative_error(a, b), 1e-5) << what << ": " << want.weights[t].name;
    EXPECT_LE(diff, 1e-4 * scale) << what << ": " << want.weights[t].name;
  }
}

// Runs `s` on the first tp x pp x dp ranks of the world (the others wait) and compares with
// the single-rank run of the same setup.
void check_layout(const Setup& s) {
  parallel::Communicator& world = mpi_world();
  const int size = s.layout.tp * s.layout.pp * s.layout.dp;
  parallel::SelfCommunicator self;
  Setup single = s;
  single.layout = {1, 1, 1};
  single.pp_layers.clear();
  const Result reference = train(self, single);
  auto group = world.split(world.rank() < size ? 0 : 1, world.rank());
  if (world.rank() >= size) return;
  const std::string what = spin::cat("(tp ", s.layout.tp, ", pp ", s.layout.pp, ", dp ", s.layout.dp,
                               s.distributed ? ", distributed" : "", s.tie ? ", tied" : ", untied",
                               ")");
  expect_same(train(*group, s), reference, what);
}

const std::vector<parallel::Layout> kLayouts = {{1, 1, 1}, {2, 1, 1}, {1, 2, 1}, {1, 1, 2},
                                               {2, 2, 1}, {2, 1, 2}, {1, 2, 2}, {2, 2, 2}};

TEST(LayoutInvariance, EveryLayoutMatchesOneRankUntied) {
  for (bool distributed : {false, true})
    for (const auto& layout : kLayouts) check_layout({layout, distributed, false});
}

TEST(LayoutInvariance, EveryLayoutMatchesOneRankTied) {
  for (bool distributed : {false, true})
    for (const auto& layout : kLayouts) check_layout({layout, distributed, true});
}

TEST(LayoutInvariance, UnevenStagesAndFourStagePipelines) {
  check_layout({{1, 2, 1}, false, true, 2, {1, 3}});
  check_layout({{1, 4, 2}, true, true, 1, {}});
  check_layout({{2, 4, 1}, false, false, 4, {}});
}

// Gradient accumulation: 8 micro-batches of 1, 4 of 2, 2 of 4 and 1 of 8 sequences.
TEST(GradientAccumulation, MicroBatchSplitsOfOneGlobalBatchAgree) {
  parallel::SelfCommunicator self;
  const Result one_batch = train(self, {{1, 1, 1}, false, false, 8});
  for (std::int64_t micro : {1, 2, 4}) {
    expect_same(train(self, {{1, 1, 1}, false, false, micro}), one_batch,
                spin::cat("micro-batch ", micro, " vs 8"));
  }
}

}  // namespace
}  // namespace spin::train
