// Run with 2 ranks. What a TP = 2 model sends, counted by the communicator: exactly the
// all-reduces of the design (docs/parallelism.md), and never a gather of logits.
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

TEST(TensorParallelCommunication, OneBlockAndTheWholeModelSendExactlyTheDesignedAllReduces) {
  parallel::ProcessGrid grid(spin::testing::mpi_world(), {2, 1, 0});
  ASSERT_EQ(grid.tp_size(), 2);
  testing::TinyShape shape;
  shape.layers = 3;
  const ModelConfig config = testing::tiny_config(shape);
  const TpDims dims = tp_dims(config, grid.tp_rank(), grid.tp_size());
  const kernels::CpuKernels cpu;
  ModelWeights weights(config, dims);
  testing::init_tiny_weights(weights, 5);
  const Transformer transformer(config, dims, grid.tp(), cpu);
  const TokenBatch batch = TokenBatch::pack({{testing::random_ids(10, 37, 1), 1},
                                             {testing::random_ids(6, 37, 2), 2}});
  const std::uint64_t n = 16, h = 16, f = sizeof(float);
  const std::uint64_t activation = n * h * f;

  // One decoder layer: o_proj and down_proj outputs forward, their inputs' gradients backward.
  const RopeTable rope(config.head_dim, 64, config.rope_theta);
  const ModelContext ctx{config, dims, grid.tp(), cpu, rope};
  const BatchGeometry geometry{batch.rows(), batch.num_seqs(), batch.cu_seqlens.data(),
                               batch.positions.data()};
  LayerActivations acts;
  acts.allocate(dims, batch.rows(),
                kernels::attention_probs_size(batch.cu_seqlens.data(), 2, dims.heads),
                Device::Cpu);
  std::vector<float> out(n * h);
  grid.tp().reset_stats();
  decoder_layer_forward(ctx, weights.layers[0], geometry, acts, out.data());
  expect_only_all_reduces(grid.tp().stats(), 2, 2 * activation, "one layer forward");
  ModelWeights grads(config, dims);
  LayerGradScratch scratch;
  scratch.allocate(dims, batch.rows(), Device::Cpu);
  grid.tp().reset_stats();
  decoder_layer_backward(ctx, weights.layers[0], grads.layers[0], geometry, acts, scratch, out.data());
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

}  // namespace
}  // namespace spin::model
