// Run with 4 ranks. The multi-GPU path without GPUs: every rank's model, gradients, reference,
// optimizer state, activations, pipeline buffers and KV caches on the emulated device
// (tests/common/emulated_device.h), its collectives through an emulated CUDA-aware
// communicator. SPIN steps (generation with hidden states sent down the pipe, 1F1B, the tied
// embedding's all-reduce, ZeRO-1's reduce-scatter and all-gather of device buffers, the
// reference sync) on TP 2 x PP 2, PP 2 x DP 2 (ZeRO-1, tied embeddings), TP 2 x DP 2 (bf16
// products) and TP 2 x PP 2 (bf16, sequence parallelism: bf16 rows all-gathered; logits in
// chunks of 5 rows), and with RMSprop (TP 2 x DP 2 in bf16: its pass writes the bf16 copy; PP 2 x
// DP 2 with ZeRO-1), and a Mixtral with its experts spread over TP 2 x PP 2 (ep 2, bf16, sequence
// parallelism: the join skipping the other rank's outputs), and with two model chunks a stage (the
// interleaved schedule's exchanges of device buffers; generation's hidden states going round to the
// first stage through host memory) on TP 2 x PP 2 (bf16, sequence parallelism) and PP 2 x DP 2
// (ZeRO-1, tied), must equal the same run with host memory and the CPU kernels bitwise: the same
// arithmetic, the same reductions, in the same order.
#include <gtest/gtest.h>

#include "checkpoint/model_gather.h"
#include "common/emulated_device.h"
#include "common/spin_fixture.h"
#include "core/error.h"
#include "mpi/mpi_test.h"

namespace spin::train {
namespace {

struct DeviceRun {
  std::vector<double> metrics;
  std::vector<ckpt::FullTensor> weights;
};

DeviceRun run(parallel::Communicator& world, parallel::Layout layout, bool distributed, bool tie, bool mixed,
              bool sequence_parallel, OptimizerAlgorithm algorithm, testing::TinyFamily family, int chunks,
              const kernels::Kernels* device_kernels) {
  const std::int64_t logits_chunk = sequence_parallel ? 5 : 0;
  SpinConfig config = testing::short_spin_config();
  config.generation.sampling.top_p = 0.9f;
  testing::TinyShape shape;
  shape.layers = 4;
  shape.tie = tie;
  shape.family = family;
  testing::SpinSetup s(world, layout, config, shape, distributed, testing::spin_examples(16), device_kernels, algorithm,
                       model::WeightStorage::Float32, chunks);
  s.transformers.set_sequence_parallel(sequence_parallel);
  s.transformers.set_logits_chunk_rows(logits_chunk);
  if (mixed) {
    s.policy.enable_bf16(s.k);
    s.reference.enable_bf16(s.k);
  }
  DeviceRun r;
  for (std::int64_t iteration = 0; iteration < 2; ++iteration) {
    for (std::int64_t index = 0; index < 2; ++index) {
      const SpinStepMetrics m = s.trainer.step(iteration, 0, index, 2e-2);
      r.metrics.insert(r.metrics.end(), {m.spin.loss, m.spin.rewards_actual, m.spin.rewards_generated,
                                         m.spin.generated_length_mean, m.grad_norm});
    }
    s.trainer.sync_reference();
  }
  // gather_model reads host copies of device shards (host_readable), through the host world.
  r.weights = ckpt::gather_model(s.policy.sharded_state_dict(), s.grid.mp());
  return r;
}

TEST(DeviceLayouts, EmulatedGpusEqualTheCpuRunBitwise) {
  struct Case {
    parallel::Layout layout;
    bool distributed, tie, mixed, sequence_parallel;
    OptimizerAlgorithm algorithm = OptimizerAlgorithm::AdamW;
    testing::TinyFamily family = testing::TinyFamily::Llama;
    int chunks = 1;  // model chunks a stage (interleaved)
  };
  const auto rmsprop = OptimizerAlgorithm::RmsProp, adamw = OptimizerAlgorithm::AdamW;
  const auto mixtral = testing::TinyFamily::Mixtral, llama = testing::TinyFamily::Llama;
  for (const Case& c :
       {Case{{2, 2, 1}, false, false, false, false}, Case{{1, 2, 2}, true, true, false, false},
        Case{{2, 1, 2}, false, false, true, false}, Case{{2, 2, 1}, false, false, true, true},
        Case{{2, 1, 2}, false, false, true, false, rmsprop}, Case{{1, 2, 2}, true, false, false, false, rmsprop},
        Case{{2, 2, 1, 2}, false, false, true, true, adamw, mixtral},
        Case{{2, 2, 1}, false, false, true, true, adamw, llama, 2},
        Case{{1, 2, 2}, true, true, false, false, adamw, llama, 2}}) {
    const std::string what =
        cat(testing::tiny_family_name(c.family), ", tp ", c.layout.tp, ", pp ", c.layout.pp, ", dp ", c.layout.dp,
            c.layout.ep > 1 ? cat(", ep ", c.layout.ep) : "", c.distributed ? ", ZeRO-1" : "", c.tie ? ", tied" : "",
            c.mixed ? ", bf16" : "", c.sequence_parallel ? ", sequence parallel, logits in chunks" : "",
            c.algorithm == rmsprop ? ", RMSprop" : "", c.chunks > 1 ? ", 2 chunks a stage" : "");
    SCOPED_TRACE(what);
    const DeviceRun want = run(testing::mpi_world(), c.layout, c.distributed, c.tie, c.mixed, c.sequence_parallel,
                               c.algorithm, c.family, c.chunks, nullptr);
    testing::EmulatedDeviceMemory memory;
    const testing::EmulatedKernels kernels(memory);
    testing::DeviceAwareCommunicator world(memory, testing::mpi_world());
    const DeviceRun got = run(world, c.layout, c.distributed, c.tie, c.mixed, c.sequence_parallel, c.algorithm,
                              c.family, c.chunks, &kernels);
    EXPECT_EQ(got.metrics, want.metrics);
    ASSERT_EQ(got.weights.size(), want.weights.size());
    for (std::size_t t = 0; t < got.weights.size(); ++t) {
      EXPECT_EQ(got.weights[t].data, want.weights[t].data) << got.weights[t].name;
    }
  }
}

}  // namespace
}  // namespace spin::train
