// Run with 8 ranks. The central property of the training engine: the same optimizer steps on
// the same global batches give the same losses and final weights for every (TP, PP, DP) layout,
// with and without the distributed optimizer, tied and untied embeddings, to 1e-5 relative of
// the single-rank run; and for every split of a global batch into micro-batches.
#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "common/sft_fixture.h"
#include "mpi/mpi_test.h"

namespace spin::train {
namespace {

using spin::testing::mpi_world;
using spin::testing::Result;
using spin::testing::SftSetup;
using spin::testing::train;

void expect_same(const Result& got, const Result& want, const std::string& what, double tolerance = 1e-5) {
  testing::expect_close(got.losses, want.losses, tolerance, 1e-7, (what + " losses").c_str());
  testing::expect_close(got.grad_norms, want.grad_norms, tolerance, 1e-7, (what + " grad norms").c_str());
  testing::expect_close(got.balance_losses, want.balance_losses, tolerance, 1e-7, (what + " balance losses").c_str());
  testing::expect_close(got.z_losses, want.z_losses, tolerance, 1e-7, (what + " z-losses").c_str());
  // Loads are row counts summed over stages and replicas: exact.
  EXPECT_EQ(got.expert_loads, want.expert_loads) << what << " expert loads";
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
    EXPECT_LE(testing::relative_error(a, b), tolerance) << what << ": " << want.weights[t].name;
    EXPECT_LE(diff, 1e-4 * scale) << what << ": " << want.weights[t].name;
  }
}

// Runs `s` on the first tp x pp x dp ranks of the world (the others wait) and compares with
// the single-rank run of the same setup.
void check_layout(const SftSetup& s, double tolerance = 1e-5) {
  parallel::Communicator& world = mpi_world();
  const int size = s.layout.tp * s.layout.pp * s.layout.dp;
  parallel::SelfCommunicator self;
  SftSetup single = s;
  single.layout = {1, 1, 1};
  single.pp_layers.clear();
  single.chunks = 1;
  const Result reference = train(self, single);
  auto group = world.split(world.rank() < size ? 0 : 1, world.rank());
  if (world.rank() >= size) return;
  const std::string what = spin::cat("(tp ", s.layout.tp, ", pp ", s.layout.pp, " x ", s.chunks, " chunks, dp ",
                                     s.layout.dp, ", ep ", s.layout.ep, s.distributed ? ", distributed" : "",
                                     s.tie ? ", tied" : ", untied", ", ", testing::tiny_family_name(s.family), ")");
  expect_same(train(*group, s), reference, what, tolerance);
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

// LoRA adapters (every projection, rank 3) trained on the frozen model: the adapters' gradients
// (replicated factors all-reduced over TP), their DP reduction and ZeRO-1 sharding -- with and
// without overlapping the reduction with the backward -- and the tied embedding frozen on both
// pipeline ends.
TEST(LayoutInvariance, LoraAdaptersUnderEveryLayout) {
  for (bool distributed : {false, true}) {
    for (const auto& layout : kLayouts) {
      SftSetup s{layout, distributed, true};
      s.lora = testing::tiny_lora();
      check_layout(s);
    }
  }
  SftSetup overlap{{2, 2, 2}, true, false};
  overlap.lora = testing::tiny_lora();
  overlap.overlap_grad_reduce = true;
  check_layout(overlap);
  // The adapters train: the first step is the base model's (B = 0), the later ones are not.
  parallel::SelfCommunicator self;
  SftSetup base{{1, 1, 1}, false, true};
  SftSetup adapted = base;
  adapted.lora = testing::tiny_lora();
  const Result a = train(self, base), b = train(self, adapted);
  EXPECT_EQ(a.losses[0], b.losses[0]);
  EXPECT_GT(std::fabs(a.losses[4] - b.losses[4]), 1e-3);
}

// LoRA's dropout (lora.dropout): masks keyed by sample, position, layer, target and global column,
// so every layout -- the row-parallel adapters' inputs split over TP, the samples over DP and
// micro-batches -- draws the same ones. And it acts: the first step is the base model's still (B = 0),
// later ones differ from the run without dropout.
TEST(LayoutInvariance, LoraDropoutUnderEveryLayout) {
  for (const auto& layout : kLayouts) {
    SftSetup s{layout, layout.dp > 1, true};
    s.lora = testing::tiny_lora();
    s.lora.dropout = 0.3;
    check_layout(s);
  }
  parallel::SelfCommunicator self;
  SftSetup plain{{1, 1, 1}, false, true};
  plain.lora = testing::tiny_lora();
  SftSetup dropped = plain;
  dropped.lora.dropout = 0.3;
  const Result a = train(self, plain), b = train(self, dropped);
  EXPECT_EQ(a.losses[0], b.losses[0]);
  EXPECT_GT(std::fabs(a.losses[4] - b.losses[4]), 1e-3);
  // The samples packed otherwise -- one micro-batch of 8 against four of 2, where the layouts
  // above keep the reference's micro-batches -- each keeps its masks (the tolerance as gradient
  // accumulation's, below).
  SftSetup packed = dropped;
  packed.micro_batch = 8;
  expect_same(train(self, packed), b, "dropout, micro-batches of 8 vs 2", 5e-5);
}

// Interleaved 1F1B: each stage holds two chunks of the 4-layer model (stage 0 layers 0 and 2,
// stage 1 layers 1 and 3), the embedding on stage 0's first chunk and the head on stage 1's last;
// 4 micro-batches a replica (2 at DP 2: the all-warm-up case), with TP, ZeRO-1, tied embeddings
// and LoRA.
TEST(LayoutInvariance, InterleavedStagesMatchOneRank) {
  for (const parallel::Layout layout : {parallel::Layout{1, 2, 1}, {2, 2, 1}, {1, 2, 2}, {2, 2, 2}}) {
    for (bool tie : {false, true}) {
      SftSetup s{layout, layout.dp > 1, tie};
      s.chunks = 2;
      check_layout(s);
    }
  }
  SftSetup lora{{1, 2, 2}, true, true};
  lora.chunks = 2;
  lora.lora = testing::tiny_lora();
  lora.overlap_grad_reduce = true;
  check_layout(lora);
}

// Micro-batches not in whole groups of the stages (parallel::interleaved_group): 3 a step (one group
// of 3), 5 (groups of 3 and 2) with TP 2, and 3 a replica at DP 2 with ZeRO-1.
TEST(LayoutInvariance, InterleavedStagesWithMicroBatchesNotInWholeGroups) {
  for (const auto& [layout, global_batch] :
       std::vector<std::pair<parallel::Layout, std::int64_t>>{{{1, 2, 1}, 6}, {{2, 2, 1}, 10}, {{1, 2, 2}, 12}}) {
    SftSetup s{layout, layout.dp > 1, true};
    s.chunks = 2;
    s.global_batch = global_batch;
    check_layout(s);
  }
}

TEST(LayoutInvariance, UnevenStagesAndFourStagePipelines) {
  check_layout({{1, 2, 1}, false, true, 2, {1, 3}});
  check_layout({{1, 4, 2}, true, true, 1, {}});
  check_layout({{2, 4, 1}, false, false, 4, {}});
}

// Gemma (GeGLU, 1 + w norms, the embedding scaled): its tied embedding split over the first and
// last stages (the lookup's gradient carries the scale, the head's does not), with TP and DP;
// Gemma 2 besides: each stage's layers with their output norms and windows (by global layer
// index), the logit cap on the last stage; Gemma 3: its local layer (0) and global one (1) on
// different stages, each with its own RoPE table and window; Granite: its embedding multiplier on
// the first stage, the logits' scaling on the last, its residual multiplier on every stage; OLMo:
// LayerNorms without parameters on every stage (no norm weight anywhere, the last stage's final
// norm too); OLMo 2:
// its norms across TP's heads and its layers without input norms on every stage. OLMo 2's tiny
// model runs at a tenth of the learning rate: at the others' (3e-2), with no input norms and
// gradient norms of 4-8, its steps turn chaotic -- one rank's run with micro-batches of 2 against
// one of 8 (a summation order, no parallelism) measured 5e-7, 7e-6, 2e-5, 3.5e-4 and 0.11
// relative apart in the gradient norms of steps 1-5 -- while at 3e-3 the same two runs stay
// within 3.1e-6, and the layouts are compared at 5e-5 like Gemma 2's. DeepSeek-V3's latent attention
// normalises latents of 6 and 8 (its heads' values from them): measured, the gradient norms agree to
// 1e-5 relative in steps 1-4 and drift to 2e-5 in step 5 at TP 2 x PP 2 x DP 2 with ZeRO-1: 5e-5.
// Gemma 2's tiny caps (1 and 2) saturate many scores, whose gradients through the cap are then
// near 0; AdamW scales such an element up to ~lr whatever its rounding (the eps note in
// sft_fixture.h), so the layouts' summation-order differences grow ~3x a step here (measured:
// 3e-7, 1e-6, 2.6e-6 relative in the gradient norms of steps 3-5 at PP 2, up to 1.8e-5 at
// TP 2 x PP 2 x DP 2): 5e-5 for it. Gemma 3 likewise: its head norms normalise 4-element heads
// (head_dim 4) and scale them by 1 + w, so a small head's rounding grows by 1 / rms; measured,
// the gradient norms agree to 1.6e-7 relative in step 1 (a wrong RoPE table or window on a stage
// would be O(1) there) and drift by 1e-7 - 3.5e-5 in steps 2-5, not monotonically (PP 2: up to
// 2.7e-6; TP 2 x PP 2 x DP 2: 3.5e-5 in step 4, 4e-7 in step 5).
TEST(LayoutInvariance, GemmaUnderPipelineTensorAndDataParallelism) {
  for (const testing::TinyFamily family :
       {testing::TinyFamily::Gemma, testing::TinyFamily::Gemma2, testing::TinyFamily::Gemma3,
        testing::TinyFamily::Granite, testing::TinyFamily::Olmo, testing::TinyFamily::Olmo2,
        testing::TinyFamily::StableLm, testing::TinyFamily::StableLmParallel, testing::TinyFamily::Cohere,
        testing::TinyFamily::Cohere2, testing::TinyFamily::GptNeox, testing::TinyFamily::Phi,
        testing::TinyFamily::Mixtral, testing::TinyFamily::Qwen2Moe, testing::TinyFamily::CohereQkNorm,
        testing::TinyFamily::Glm4Moe, testing::TinyFamily::DeepseekV3}) {
    SCOPED_TRACE(testing::tiny_family_name(family));
    const double tolerance = family == testing::TinyFamily::Gemma || family == testing::TinyFamily::Granite ||
                                     family == testing::TinyFamily::Olmo || family == testing::TinyFamily::StableLm ||
                                     family == testing::TinyFamily::StableLmParallel ||
                                     family == testing::TinyFamily::Cohere || family == testing::TinyFamily::Cohere2 ||
                                     family == testing::TinyFamily::GptNeox || family == testing::TinyFamily::Phi ||
                                     family == testing::TinyFamily::Mixtral || family == testing::TinyFamily::Qwen2Moe ||
                                     family == testing::TinyFamily::CohereQkNorm ||
                                     family == testing::TinyFamily::Glm4Moe
                                 ? 1e-5
                                 : 5e-5;
    SftSetup s{{1, 2, 1}, false, true};
    s.family = family;
    if (family == testing::TinyFamily::Olmo2) s.peak_lr = 3e-3;
    check_layout(s, tolerance);
    s.layout = {2, 2, 2};
    s.distributed = true;
    check_layout(s, tolerance);
  }
}

// A mixture of experts' router losses trained (ModelConfig::router_aux_loss_coef,
// router_z_loss_coef): their gradients weighted 1 / (micro-batches x replicas) on each rank, their
// values summed over the pipeline's stages and the replicas -- the same losses, balance losses,
// z-losses, gradient norms and weights on TP 2 x PP 2 x DP 2 with ZeRO-1 and PP 2 as on one rank
// (weighting by the rank's micro-batches alone, or leaving a stage's layers out of the values,
// fails it).
TEST(LayoutInvariance, RouterLossesUnderPipelineTensorAndDataParallelism) {
  for (const testing::TinyFamily family : {testing::TinyFamily::Mixtral, testing::TinyFamily::Qwen2Moe}) {
    SCOPED_TRACE(testing::tiny_family_name(family));
    SftSetup s{{1, 2, 1}, false, true};
    s.family = family;
    s.router_aux_loss_coef = 0.1f;
    s.router_z_loss_coef = 0.01f;
    check_layout(s);
    s.layout = {2, 2, 2};
    s.distributed = true;
    check_layout(s);
    s.chunks = 2;  // interleaved: each stage's two chunks' losses and loads summed
    check_layout(s);
  }
}

// GLM-4.5's auxiliary-loss-free balancing (ModelConfig::router_bias_update_rate): the step's expert
// loads summed over the stages and the replicas, every rank moving its layers' correction biases by
// the same signs -- the same losses, loads and weights (the biases among them) on TP 2 x PP 2 x DP 2
// with ZeRO-1 and on PP 2 as on one rank; and the biases do move (a run without the update ends
// elsewhere). Counting one replica's rows alone, or one stage's, fails it.
TEST(LayoutInvariance, RouterBiasBalancingUnderPipelineTensorAndDataParallelism) {
  SftSetup s{{1, 2, 1}, false, true};
  s.family = testing::TinyFamily::Glm4Moe;
  s.router_bias_update_rate = 0.01f;
  check_layout(s, 5e-5);
  s.layout = {2, 2, 2};
  s.distributed = true;
  check_layout(s, 5e-5);
  SftSetup interleaved = s;  // each stage's two chunks' biases moved by the same loads
  interleaved.chunks = 2;
  check_layout(interleaved, 5e-5);
  parallel::SelfCommunicator self;
  SftSetup one = s, still = s;
  one.layout = still.layout = {1, 1, 1};
  still.router_bias_update_rate = 0.0f;
  const Result moved = train(self, one), kept = train(self, still);
  std::size_t biases = 0;
  for (std::size_t t = 0; t < moved.weights.size(); ++t) {
    if (!moved.weights[t].name.ends_with("e_score_correction_bias")) continue;
    ++biases;
    float most = 0.0f;  // each element moved by a whole number of steps' 0.01 (5 steps)
    for (std::size_t i = 0; i < moved.weights[t].data.size(); ++i) {
      most = std::max(most, std::fabs(moved.weights[t].data[i] - kept.weights[t].data[i]));
    }
    EXPECT_GT(most, 0.005f) << moved.weights[t].name;
    EXPECT_LE(most, 0.0501f) << moved.weights[t].name;
  }
  EXPECT_EQ(biases, 3u);  // layers 1-3 of 4 (layer 0 dense)
}

// LoRA adapters of a mixture's experts (and Qwen2-MoE's shared expert) over its frozen router and
// experts: each expert's replicated factors' gradients all-reduced over TP beside the layer's own,
// the adapters' DP reduction and ZeRO-1 sharding with the stages' layers; under dropout each grouped
// row masked by its source row's key, so every layout draws the same masks. GLM-4.5's: a stage of
// its dense layer's adapters, a stage of its experts' (PP 2); its head norms over heads of 4 grow
// the layouts' rounding by 1 / rms as Gemma's above (measured: 1.3e-5 in one adapter after the
// steps), so 5e-5 there.
TEST(LayoutInvariance, ExpertAdaptersUnderPipelineTensorAndDataParallelism) {
  for (const testing::TinyFamily family :
       {testing::TinyFamily::Mixtral, testing::TinyFamily::Qwen2Moe, testing::TinyFamily::Glm4Moe}) {
    SCOPED_TRACE(testing::tiny_family_name(family));
    SftSetup s{{2, 2, 2}, true, true};
    s.family = family;
    s.lora = testing::tiny_lora();
    const double tolerance = family == testing::TinyFamily::Glm4Moe ? 5e-5 : 1e-5;
    check_layout(s, tolerance);
    s.lora.dropout = 0.3;
    check_layout(s, tolerance);
  }
}

// Expert parallelism within the TP group (TP 2 x PP 2 x DP 2 with ZeRO-1, ep 2: each TP rank holds half
// the experts whole): each rank trains its experts alone -- their gradients reduced over DP, their
// optimizer shards and their part of the gradient norm with the rest -- and the losses, router losses,
// loads and weights are one rank's. Mixtral's router losses trained; Qwen2-MoE's shared expert split over
// TP as ever; GLM-4.5's dense first layer and bias balancing; DeepSeek-V3's latent attention; LoRA adapters
// of the experts, under dropout too, over their frozen experts.
TEST(LayoutInvariance, ExpertParallelismUnderPipelineTensorAndDataParallelism) {
  for (const testing::TinyFamily family : {testing::TinyFamily::Mixtral, testing::TinyFamily::Qwen2Moe,
                                           testing::TinyFamily::Glm4Moe, testing::TinyFamily::DeepseekV3}) {
    SCOPED_TRACE(testing::tiny_family_name(family));
    SftSetup s{{2, 2, 2, 2}, true, true};
    s.family = family;
    if (family == testing::TinyFamily::Mixtral) s.router_aux_loss_coef = 0.1f, s.router_z_loss_coef = 0.01f;
    if (family == testing::TinyFamily::Glm4Moe) s.router_bias_update_rate = 0.01f;
    // (GLM-4.5's head norms and DeepSeek-V3's latents grow the layouts' rounding, as above.)
    const double tolerance =
        family == testing::TinyFamily::Mixtral || family == testing::TinyFamily::Qwen2Moe ? 1e-5 : 5e-5;
    check_layout(s, tolerance);
    if (family == testing::TinyFamily::Glm4Moe || family == testing::TinyFamily::DeepseekV3) continue;
    s.lora = testing::tiny_lora();
    s.lora.dropout = 0.3;
    check_layout(s, tolerance);
  }
}

// Gradient accumulation: 8 micro-batches of 1, 4 of 2, 2 of 4 and 1 of 8 sequences. A weight
// gradient's sum over rows runs inside one product or across several, in an order that depends on
// the BLAS kernel's blocking: on an AVX-512 machine (OpenBLAS's SkylakeX sgemm) the fifth step's
// gradient norm of 4 micro-batches of 2 differs from one of 8 by 1.6e-5 relative (at most 1e-5 on
// the AVX2 machines before it; the losses by less), hence 5e-5. A micro-batch lost or counted twice
// moves the loss by ~10%.
TEST(GradientAccumulation, MicroBatchSplitsOfOneGlobalBatchAgree) {
  parallel::SelfCommunicator self;
  const Result one_batch = train(self, {{1, 1, 1}, false, false, 8});
  for (std::int64_t micro : {1, 2, 4}) {
    expect_same(train(self, {{1, 1, 1}, false, false, micro}), one_batch, spin::cat("micro-batch ", micro, " vs 8"),
                5e-5);
  }
}

}  // namespace
}  // namespace spin::train
