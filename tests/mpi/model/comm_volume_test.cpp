// Run with 2 ranks. What a TP = 2 model sends, counted by the communicator: exactly the
// all-reduces of the design (docs/parallelism.md) -- with sequence parallelism the
// reduce-scatters and all-gathers that replace them -- and never a gather of logits.
#include <gtest/gtest.h>

#include "common/test_util.h"
#include "common/tiny_model.h"
#include "kernels/cpu/cpu_kernels.h"
#include "model/transformer.h"
#include "mpi/mpi_test.h"
#include "parallel/process_grid.h"

namespace spin::model {
namespace {

using parallel::CommOp;

void expect_only_all_reduces(const parallel::CommStats& s, std::uint64_t calls,
                             std::uint64_t bytes, const char* what) {
  EXPECT_EQ(s.calls_of(CommOp::AllReduce), calls) << what;
  EXPECT_EQ(s.bytes_of(CommOp::AllReduce), bytes) << what;
  for (CommOp op : {CommOp::AllGather, CommOp::ReduceScatter, CommOp::Broadcast, CommOp::Send,
                    CommOp::Recv, CommOp::Barrier}) {
    EXPECT_EQ(s.calls_of(op), 0u) << what << ": unexpected " << parallel::comm_op_name(op);
  }
}

// A 3-layer tiny model at TP 2 and a batch of 16 rows (hidden 16).
// `ep`: a mixture's experts over that many groups of the two ranks.
struct Tp2Model {
  explicit Tp2Model(testing::TinyFamily family = testing::TinyFamily::Llama, int ep = 1)
      : grid(spin::testing::mpi_world(), {2, 1, 0, ep}), config(testing::tiny_config(three_layers(family))) {
    testing::init_tiny_weights(weights, 5);
  }
  parallel::ProcessGrid grid;
  ModelConfig config;
  TpDims dims = tp_dims(config, grid.tp_rank(), grid.tp_size(), grid.ep_size());
  kernels::CpuKernels cpu;
  ModelWeights weights{config, dims};
  Transformer transformer{config, dims, grid.tp(), cpu};
  TokenBatch batch = TokenBatch::pack({{testing::random_ids(10, 37, 1), 1}, {testing::random_ids(6, 37, 2), 2}});

  static testing::TinyShape three_layers(testing::TinyFamily family) {
    testing::TinyShape shape;
    shape.layers = 3;
    shape.family = family;
    return shape;
  }
};

// What one training forward of `m` (its batch) sends, and what its backward sends.
struct StepStats {
  parallel::CommStats forward, backward;
};
StepStats step_stats(Tp2Model& m) {
  StepStats s;
  m.grid.tp().reset_stats();
  Activations saved;
  m.transformer.forward(m.weights, m.batch, saved, true);
  s.forward = m.grid.tp().stats();
  ModelWeights grads(m.config, m.dims);
  m.grid.tp().reset_stats();
  m.transformer.backward(m.weights, saved, std::vector<float>{1.0f, 1.0f}, grads);
  s.backward = m.grid.tp().stats();
  return s;
}

// Under sequence parallelism on Tp2Model's 16 rows of 16: each all-gather brings the other rank's
// half of an activation, each reduce-scatter sends a whole one; the all-reduces as counted.
void expect_split_collectives(const parallel::CommStats& s, std::uint64_t gathers, std::uint64_t scatters,
                              std::uint64_t reduces, std::uint64_t reduce_bytes, const char* what) {
  EXPECT_EQ(s.calls_of(CommOp::AllGather), gathers) << what;
  EXPECT_EQ(s.bytes_of(CommOp::AllGather), gathers * (16 * 16 * sizeof(float) / 2)) << what;
  EXPECT_EQ(s.calls_of(CommOp::ReduceScatter), scatters) << what;
  EXPECT_EQ(s.bytes_of(CommOp::ReduceScatter), scatters * 16 * 16 * sizeof(float)) << what;
  EXPECT_EQ(s.calls_of(CommOp::AllReduce), reduces) << what;
  EXPECT_EQ(s.bytes_of(CommOp::AllReduce), reduce_bytes) << what;
}

TEST(TensorParallelCommunication, OneBlockAndTheWholeModelSendExactlyTheDesignedAllReduces) {
  Tp2Model m;
  auto& [grid, config, dims, cpu, weights, transformer, batch] = m;
  ASSERT_EQ(grid.tp_size(), 2);
  const std::uint64_t n = 16, h = 16, f = sizeof(float);
  const std::uint64_t activation = n * h * f;

  // One decoder layer: o_proj and down_proj outputs forward, their inputs' gradients backward.
  const RopeTable rope(config.head_dim, 64, config.rope_theta);
  const ModelContext ctx{config, dims, grid.tp(), cpu, rope};
  const BatchGeometry geometry{batch.rows(), batch.num_seqs(), batch.cu_seqlens.data(), batch.positions.data(),
                               batch.positions.data()};
  LayerActivations acts;
  acts.allocate(dims, geometry, kernels::attention_probs_size(batch.cu_seqlens.data(), 2, dims.heads), Device::Cpu,
                false, config, false);
  std::vector<float> out(n * h);
  grid.tp().reset_stats();
  decoder_layer_forward(ctx, weights.layers[0], 0, geometry, acts, out.data());
  expect_only_all_reduces(grid.tp().stats(), 2, 2 * activation, "one layer forward");
  ModelWeights grads(config, dims);
  LayerGradScratch scratch;
  scratch.allocate(dims, geometry, Device::Cpu, false, config);
  grid.tp().reset_stats();
  decoder_layer_backward(ctx, weights.layers[0], grads.layers[0], 0, geometry, acts, scratch, out.data());
  expect_only_all_reduces(grid.tp().stats(), 2, 2 * activation, "one layer backward");

  // The whole model: embedding (1) + 2 per layer + head: row max, then sum-exp with target
  // logit fused (2 scalars per token). Backward: the head's input gradient + 2 per layer.
  grid.tp().reset_stats();
  Activations saved;
  transformer.forward(weights, batch, saved, true);
  expect_only_all_reduces(grid.tp().stats(), 1 + 2 * 3 + 2,
                          activation * (1 + 2 * 3) + n * f + 2 * n * f, "model forward");
  grid.tp().reset_stats();
  transformer.backward(weights, saved, std::vector<float>{1.0f, 1.0f}, grads);
  expect_only_all_reduces(grid.tp().stats(), 1 + 2 * 3, activation * (1 + 2 * 3), "model backward");
}

// LoRA adapters of rank 3 on every projection: the forward sends nothing more (a row-parallel
// adapter's partial products join its projection's all-reduce); the backward one all-reduce
// per layer more, of the replicated factors' gradients ([7, rank x hidden]).
TEST(TensorParallelCommunication, LoraAdaptersAddOneAllReducePerLayerBackward) {
  Tp2Model m;
  const std::uint64_t n = 16, h = 16, f = sizeof(float), r = 3;
  const std::uint64_t activation = n * h * f;
  const LoraConfig lora = testing::tiny_lora(static_cast<std::int64_t>(r));
  ModelWeights adapters = ModelWeights::adapters(m.config, lora, m.dims, StageLayers::whole(3));
  testing::randomize_matrices(adapters, 7, 0.3f);
  m.grid.tp().reset_stats();
  Activations saved;
  m.transformer.forward(m.weights, m.batch, saved, true, {}, &adapters);
  expect_only_all_reduces(m.grid.tp().stats(), 1 + 2 * 3 + 2, activation * (1 + 2 * 3) + n * f + 2 * n * f,
                          "model forward with adapters");
  ModelWeights grads = ModelWeights::adapters(m.config, lora, m.dims, StageLayers::whole(3));
  m.grid.tp().reset_stats();
  m.transformer.backward(m.weights, saved, std::vector<float>{1.0f, 1.0f}, grads);
  expect_only_all_reduces(m.grid.tp().stats(), 1 + 2 * 3 + 3, activation * (1 + 2 * 3) + 3 * 7 * r * h * f,
                          "model backward with adapters");
}

// DeepSeek-V3's latent attention (model/latent_attention.h): the forward sends what a Llama's does (the latent
// projections computed whole on each rank from the gathered input); the backward one all-reduce a layer more, of
// the latents' gradients ([rows, q_lora_rank + kv_lora_rank + rotary_dim]) -- besides its mixture's layers' one
// each, of the routing weights' gradients ([rows, experts a token + the shared one]: model/moe.h). With LoRA
// adapters of every projection
// one more a layer, of the replicated factors' gradients ([8 + 3 x (experts + 1) slots, rank x the widest of
// hidden and the latents]: kv_b_proj's A has a slot, q_a_proj's and kv_a_proj_with_mqa's adapters -- whole on
// every rank -- none).
TEST(TensorParallelCommunication, LatentAttentionAddsOneAllReduceOfTheLatentsPerLayerBackward) {
  Tp2Model m(testing::TinyFamily::DeepseekV3);
  const ModelConfig& c = m.config;
  const std::uint64_t n = 16, h = 16, f = sizeof(float), r = 3, layers = 3;
  ASSERT_EQ(static_cast<std::uint64_t>(c.hidden_size), h);
  const std::uint64_t activation = n * h * f;
  const auto latents = static_cast<std::uint64_t>(c.q_lora_rank + c.kv_lora_rank + c.rotary_dim) * n * f;
  const std::uint64_t moe_layers = 2, routing = n * static_cast<std::uint64_t>(c.mlp_outputs()) * f;
  const StepStats s = step_stats(m);
  expect_only_all_reduces(s.forward, 1 + 2 * layers + 2, activation * (1 + 2 * layers) + n * f + 2 * n * f,
                          "latent attention forward");
  const std::uint64_t calls = 1 + 3 * layers + moe_layers;
  const std::uint64_t bytes = activation * (1 + 2 * layers) + layers * latents + moe_layers * routing;
  expect_only_all_reduces(s.backward, calls, bytes, "latent attention backward");
  const LoraConfig lora = testing::tiny_lora(c, static_cast<std::int64_t>(r));
  ModelWeights adapters = ModelWeights::adapters(c, lora, m.dims, StageLayers::whole(3));
  testing::randomize_matrices(adapters, 7, 0.3f);
  Activations saved;
  m.transformer.forward(m.weights, m.batch, saved, true, {}, &adapters);
  ModelWeights grads = ModelWeights::adapters(c, lora, m.dims, StageLayers::whole(3));
  m.grid.tp().reset_stats();
  m.transformer.backward(m.weights, saved, std::vector<float>{1.0f, 1.0f}, grads);
  const std::uint64_t widest = std::max<std::uint64_t>(
      {h, static_cast<std::uint64_t>(c.q_lora_rank), static_cast<std::uint64_t>(c.kv_lora_rank)});
  const std::uint64_t slots = 8 + 3 * static_cast<std::uint64_t>(c.num_experts + (c.shared_expert() ? 1 : 0));
  expect_only_all_reduces(m.grid.tp().stats(), calls + layers, bytes + layers * slots * r * widest * f,
                          "latent attention backward with adapters");
}

// OLMo 2's q and k norms span both ranks' heads: one all-reduce more per layer each way, of a
// float per row for q and one for k together ([2, rows]: the sums of squares forward, of dy w x
// backward) -- a sixteenth of an activation's bytes here, an eighth of hidden's at any size.
TEST(TensorParallelCommunication, Olmo2NormsAddOneAllReduceOfTwoFloatsPerRowPerLayer) {
  Tp2Model m(testing::TinyFamily::Olmo2);
  const std::uint64_t n = 16, h = 16, f = sizeof(float);
  const std::uint64_t activation = n * h * f, sums = 2 * n * f;
  const StepStats s = step_stats(m);
  expect_only_all_reduces(s.forward, 1 + 3 * 3 + 2, activation * (1 + 2 * 3) + 3 * sums + n * f + 2 * n * f,
                          "OLMo 2 forward");
  expect_only_all_reduces(s.backward, 1 + 3 * 3, activation * (1 + 2 * 3) + 3 * sums, "OLMo 2 backward");
}

// A parallel residual (StableLM's use_parallel_residual; Cohere's layers): one norm a layer, so the
// backward all-reduces its input gradient once (both halves' products' gradients summed first);
// under sequence parallelism the norm's output is gathered once forward and once backward, the
// output gradient once backward, and its weight and bias gradients go in one all-reduce of
// [2, hidden]. The forward reduces both halves' partial sums at once: one all-reduce a layer, or
// under sequence parallelism one reduce-scatter.
TEST(TensorParallelCommunication, ParallelResidualGathersAndReducesOnceWhereTheHalvesShare) {
  const std::uint64_t n = 16, h = 16, f = sizeof(float);
  const std::uint64_t activation = n * h * f;
  {
    Tp2Model m(testing::TinyFamily::StableLmParallel);
    const StepStats s = step_stats(m);
    expect_only_all_reduces(s.forward, 1 + 3 + 2, activation * (1 + 3) + n * f + 2 * n * f,
                            "parallel residual forward");
    expect_only_all_reduces(s.backward, 1 + 3, activation * (1 + 3), "parallel residual backward");
  }
  Tp2Model m(testing::TinyFamily::StableLmParallel);
  m.transformer.set_sequence_parallel(true);
  const StepStats s = step_stats(m);
  // Forward: the embedding's reduce-scatter; per layer one gather (the norm's output, which both
  // halves read) and one reduce-scatter (both halves' sums); the final norm's gather; the head's
  // two all-reduces.
  expect_split_collectives(s.forward, 3 + 1, 1 + 3, 2, n * f + 2 * n * f, "parallel residual forward, SP");
  // Backward: the final norm's output gathered again, its reduce-scatter and [2, hidden] gradients;
  // per layer the output gradient and the norm's output gathered once each, one reduce-scatter, one
  // [2, hidden] all-reduce; the embedding's gather.
  expect_split_collectives(s.backward, 1 + 2 * 3 + 1, 1 + 3, 1 + 3, (1 + 3) * 2 * h * f,
                           "parallel residual backward, SP");
}

// GPT-NeoX: the parallel residual with a norm for each half, so forward one reduction a layer
// (both halves' partial sums) but each norm its own gathers and input-gradient reduction;
// o_proj's and down_proj's biases added after the reduction: without sequence parallelism their
// gradients need nothing (the output gradient is the same on every rank), under it one all-reduce of
// [hidden] a layer (both biases' gradients are the same column sums).
TEST(TensorParallelCommunication, GptNeoxReducesOnceForwardAndItsBiasesOnceUnderSequenceParallelism) {
  const std::uint64_t n = 16, h = 16, f = sizeof(float);
  const std::uint64_t activation = n * h * f;
  {
    Tp2Model m(testing::TinyFamily::GptNeox);
    const StepStats s = step_stats(m);
    expect_only_all_reduces(s.forward, 1 + 3 + 2, activation * (1 + 3) + n * f + 2 * n * f, "forward");
    expect_only_all_reduces(s.backward, 1 + 2 * 3, activation * (1 + 2 * 3), "backward");
  }
  Tp2Model m(testing::TinyFamily::GptNeox);
  m.transformer.set_sequence_parallel(true);
  const StepStats s = step_stats(m);
  // Forward: per layer both norms' outputs gathered, one reduce-scatter; the final norm's gather,
  // the embedding's reduce-scatter, the head's two all-reduces.
  expect_split_collectives(s.forward, 2 * 3 + 1, 1 + 3, 2, n * f + 2 * n * f, "forward, SP");
  // Backward: per layer the output gradient and both norms' outputs gathered, each norm's input
  // gradient reduce-scattered, each norm's [2, hidden] and the biases' [hidden] all-reduced; the
  // final norm's gather, reduce-scatter and [2, hidden]; the embedding's gather.
  expect_split_collectives(s.backward, 1 + 3 * 3 + 1, 1 + 2 * 3, 1 + 3 * 3, (2 + 3 * 5) * h * f, "backward, SP");
}

// Mixtral's mixture of experts: the forward sends what a dense MLP's does (its experts' weighted
// partial sums go through the MLP's one reduction; the routing is the same on every rank); the
// backward one all-reduce more a layer, of the [rows, k] weight gradients (k = 2), with or without
// sequence parallelism. Qwen2-MoE's shared expert joins both: its output in the same partial sums,
// its gate's weight gradient a column more of the same all-reduce ([rows, k + 1]).
TEST(TensorParallelCommunication, MixtureOfExpertsAddsOneAllReduceOfItsWeightGradientsPerLayerBackward) {
  const std::uint64_t n = 16, h = 16, f = sizeof(float), k = 2;
  const std::uint64_t activation = n * h * f;
  {
    Tp2Model m(testing::TinyFamily::Mixtral);
    const StepStats s = step_stats(m);
    expect_only_all_reduces(s.forward, 1 + 2 * 3 + 2, activation * (1 + 2 * 3) + n * f + 2 * n * f, "forward");
    expect_only_all_reduces(s.backward, 1 + 3 * 3, activation * (1 + 2 * 3) + 3 * n * k * f, "backward");
  }
  {
    Tp2Model m(testing::TinyFamily::Qwen2Moe);
    const StepStats s = step_stats(m);
    expect_only_all_reduces(s.forward, 1 + 2 * 3 + 2, activation * (1 + 2 * 3) + n * f + 2 * n * f, "forward, shared");
    expect_only_all_reduces(s.backward, 1 + 3 * 3, activation * (1 + 2 * 3) + 3 * n * (k + 1) * f, "backward, shared");
  }
  Tp2Model m(testing::TinyFamily::Mixtral);
  m.transformer.set_sequence_parallel(true);
  const StepStats s = step_stats(m);
  expect_split_collectives(s.forward, 2 * 3 + 1, 1 + 2 * 3, 2, n * f + 2 * n * f, "forward, SP");
  // Backward as Llama's (per layer two output gradients and two norm outputs gathered, two input
  // gradients reduce-scattered, two norms' [hidden] weight gradients all-reduced; the final norm's) and the
  // weight gradients.
  expect_split_collectives(s.backward, 1 + 4 * 3 + 1, 1 + 2 * 3, 1 + 3 * 3, (1 + 2 * 3) * h * f + 3 * n * k * f,
                           "backward, SP");
}

// Expert parallelism within the TP group (ep 2: each rank two of the four experts, whole): the same
// collectives as every rank its share of every expert -- no dispatch: every rank routes every row, and
// its partial sums leave the other rank's experts out --; with LoRA adapters of every projection, the
// experts' adapters need no reduction (each whole on its rank): the backward's adapter all-reduce is the
// layer's 7 slots, not 7 + 3 a expert.
TEST(TensorParallelCommunication, ExpertParallelismSendsWhatTheTpSplitSendsLessTheExpertAdapters) {
  const std::uint64_t n = 16, h = 16, f = sizeof(float), k = 2, r = 3;
  const std::uint64_t activation = n * h * f;
  Tp2Model m(testing::TinyFamily::Mixtral, 2);
  ASSERT_EQ(m.dims.experts, 2);
  const StepStats s = step_stats(m);
  expect_only_all_reduces(s.forward, 1 + 2 * 3 + 2, activation * (1 + 2 * 3) + n * f + 2 * n * f, "forward");
  expect_only_all_reduces(s.backward, 1 + 3 * 3, activation * (1 + 2 * 3) + 3 * n * k * f, "backward");
  for (const int ep : {1, 2}) {
    Tp2Model a(testing::TinyFamily::Mixtral, ep);
    const LoraConfig lora = testing::tiny_lora(static_cast<std::int64_t>(r));
    ModelWeights adapters = ModelWeights::adapters(a.config, lora, a.dims, StageLayers::whole(3));
    testing::randomize_matrices(adapters, 7, 0.3f);
    Activations saved;
    a.transformer.forward(a.weights, a.batch, saved, true, {}, &adapters);
    ModelWeights grads = ModelWeights::adapters(a.config, lora, a.dims, StageLayers::whole(3));
    a.grid.tp().reset_stats();
    a.transformer.backward(a.weights, saved, std::vector<float>{1.0f, 1.0f}, grads);
    const std::uint64_t slots = ep == 1 ? 7 + 3 * 4 : 7;
    expect_only_all_reduces(a.grid.tp().stats(), 1 + 4 * 3,
                            activation * (1 + 2 * 3) + 3 * n * k * f + 3 * slots * r * h * f,
                            ep == 1 ? "backward with adapters, ep 1" : "backward with adapters, ep 2");
  }
}

// Sequence parallelism: every activation all-reduce becomes a reduce-scatter of the
// [rows, hidden] partial sums and an all-gather of this rank's rows (half of them at TP 2);
// the norms' weight gradients add an all-reduce of [hidden] each; the head's two all-reduces of
// per-row scalars stay.
TEST(TensorParallelCommunication, SequenceParallelismReduceScattersAndGathersInsteadOfAllReducing) {
  Tp2Model m;
  auto& [grid, config, dims, cpu, weights, transformer, batch] = m;
  transformer.set_sequence_parallel(true);
  const std::uint64_t n = 16, h = 16, f = sizeof(float);
  const std::uint64_t activation = n * h * f, half = activation / 2;
  const auto expect = [](const parallel::CommStats& s, std::uint64_t gathers, std::uint64_t gather_bytes,
                         std::uint64_t scatters, std::uint64_t scatter_bytes, std::uint64_t reduces,
                         std::uint64_t reduce_bytes, const char* what) {
    EXPECT_EQ(s.calls_of(CommOp::AllGather), gathers) << what;
    EXPECT_EQ(s.bytes_of(CommOp::AllGather), gather_bytes) << what;
    EXPECT_EQ(s.calls_of(CommOp::ReduceScatter), scatters) << what;
    EXPECT_EQ(s.bytes_of(CommOp::ReduceScatter), scatter_bytes) << what;
    EXPECT_EQ(s.calls_of(CommOp::AllReduce), reduces) << what;
    EXPECT_EQ(s.bytes_of(CommOp::AllReduce), reduce_bytes) << what;
    for (CommOp op : {CommOp::Broadcast, CommOp::Send, CommOp::Recv, CommOp::Barrier}) {
      EXPECT_EQ(s.calls_of(op), 0u) << what << ": unexpected " << parallel::comm_op_name(op);
    }
  };
  // Forward: the embedding's reduce-scatter, per layer two of each, the final norm's gather of
  // its output rows and the head's two all-reduces (row max; sum-exp with the target logit).
  grid.tp().reset_stats();
  Activations saved;
  transformer.forward(weights, batch, saved, true);
  expect(grid.tp().stats(), 2 * 3 + 1, (2 * 3 + 1) * half, 1 + 2 * 3, (1 + 2 * 3) * activation, 2,
         n * f + 2 * n * f, "model forward");
  // Backward: the final norm's output gathered again (for the head's weight gradient), its
  // reduce-scatter and weight gradient; per layer the gathers of the two output gradients and of
  // the two norm outputs (again, for the weight gradients), two reduce-scatters and the two
  // norms' weight gradients; the embedding's gather.
  ModelWeights grads(config, dims);
  grid.tp().reset_stats();
  transformer.backward(weights, saved, std::vector<float>{1.0f, 1.0f}, grads);
  expect(grid.tp().stats(), 1 + 4 * 3 + 1, (1 + 4 * 3 + 1) * half, 1 + 2 * 3, (1 + 2 * 3) * activation, 1 + 2 * 3,
         (1 + 2 * 3) * h * f, "model backward");
}

}  // namespace
}  // namespace spin::model
