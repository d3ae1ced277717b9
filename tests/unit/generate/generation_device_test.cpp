// Generation on an emulated GPU (tests/common/emulated_device.h): the sampler's choices and the
// generator's responses equal the CPU path's bitwise, and a step crosses between host and device
// as often as docs/generation.md says -- each crossing is a copy the GPU's stream waits on (a copy
// back is a host round trip).
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "common/emulated_device.h"
#include "common/test_util.h"
#include "common/tiny_model.h"
#include "core/workspace.h"
#include "generate/generator.h"
#include "generate/sampling.h"
#include "kernels/cpu/cpu_kernels.h"
#include "parallel/communicator.h"

namespace spin::generate {
namespace {

using testing::EmulatedDeviceMemory;
using testing::EmulatedKernels;

struct Mode {
  std::string name;
  SamplingParams params;
  std::size_t uploads, copies_back;  // host <-> device copies a step
};

std::vector<Mode> modes() {
  std::vector<Mode> m(6);
  m[0].name = "greedy", m[0].params.greedy = true, m[0].uploads = 1, m[0].copies_back = 1;
  m[1].name = "plain", m[1].params.temperature = 0.8f, m[1].uploads = 1, m[1].copies_back = 1;
  m[2].name = "top-k + top-p", m[2].params.top_k = 5, m[2].params.top_p = 0.8f, m[2].uploads = 1, m[2].copies_back = 1;
  // The step's arrays, four search rounds (the first with the shifts), the thresholds; the
  // statistics, four histograms, the winners.
  m[3].name = "top-p", m[3].params.top_p = 0.7f, m[3].uploads = 6, m[3].copies_back = 6;
  m[4].name = "min-p", m[4].params.min_p = 0.05f, m[4].uploads = 2, m[4].copies_back = 2;
  m[5].name = "top-p + min-p", m[5].params.top_p = 0.9f, m[5].params.min_p = 0.02f, m[5].uploads = 6,
  m[5].copies_back = 6;
  for (Mode& mode : m) mode.params.repetition_penalty = 1.3f;
  return m;
}

TEST(SamplerOnDevice, EqualsTheCpuPathAndCrossesToTheHostAsDocumented) {
  constexpr std::int64_t kVocab = 300, kRows = 3;
  std::vector<float> logits(static_cast<std::size_t>(kVocab * kRows));
  for (std::size_t i = 0; i < logits.size(); ++i) logits[i] = static_cast<float>(std::sin(0.37 * double(i)) * 3.0);
  const std::vector<std::int32_t> history = {4, 9, 9, 120};
  std::vector<SampleRow> rows = {{0, 5, history, false}, {7, 9, {}, true}, {3, 6, history, true}};
  model::TpDims dims;
  dims.vocab_rows = dims.vocab_valid = kVocab;
  const std::vector<std::int32_t> eos = {2, 17};

  EmulatedDeviceMemory memory;
  const EmulatedKernels device_kernels(memory);
  const kernels::CpuKernels cpu_kernels;
  parallel::SelfCommunicator tp;
  const Tensor device_logits = UploadBuffer().upload(std::span<const float>(logits), Device::Cuda);
  for (const Mode& mode : modes()) {
    SCOPED_TRACE(mode.name);
    const VocabParallelSampler cpu(dims, tp, cpu_kernels, mode.params, 11, eos);
    const VocabParallelSampler device(dims, tp, device_kernels, mode.params, 11, eos);
    for (int step = 0; step < 3; ++step) {
      for (SampleRow& row : rows) ++row.position;
      const std::vector<Sampled> want = cpu.sample(logits.data(), rows);
      const EmulatedDeviceMemory::Traffic before = memory.traffic();
      const std::vector<Sampled> got = device.sample(device_logits.f32(), rows);
      const EmulatedDeviceMemory::Traffic after = memory.traffic();
      EXPECT_EQ(after.from_host - before.from_host, mode.uploads);
      EXPECT_EQ(after.to_host - before.to_host, mode.copies_back);
      if (step > 0) {
        EXPECT_EQ(after.allocations, before.allocations);  // every buffer kept from the step before
      }
      ASSERT_EQ(got.size(), want.size());
      for (std::size_t r = 0; r < got.size(); ++r) {
        EXPECT_EQ(got[r].token, want[r].token) << "row " << r;
        EXPECT_EQ(got[r].logprob, want[r].logprob) << "row " << r;
        EXPECT_NE(got[r].token, rows[r].ban_eos ? 2 : -1);
        EXPECT_NE(got[r].token, rows[r].ban_eos ? 17 : -1);
      }
    }
  }
}

// A decode step of the whole generator on the device: the batch's arrays (tokens, positions,
// targets, KV-cache rows, last rows) go up in one copy and the sampler's in another, one copy
// comes back, and nothing is allocated (every buffer is kept from the step before); the responses
// are the CPU run's.
TEST(GenerationOnDevice, ADecodeStepIsTwoUploadsAndOneCopyBack) {
  const model::ModelConfig config = testing::tiny_config({});
  const model::TpDims dims = model::tp_dims(config, 0, 1);
  model::ModelWeights host(config, dims);
  testing::init_tiny_weights(host, 11, 0.5f, config.norm_weight_offset);
  EmulatedDeviceMemory memory;
  const EmulatedKernels device_kernels(memory);
  const kernels::CpuKernels cpu_kernels;
  parallel::SelfCommunicator world;
  const parallel::ProcessGrid grid{world, {1, 1, 1}};
  model::ModelWeights weights(config, dims, model::StageLayers::whole(config.num_layers), 1, Device::Cuda);
  weights.copy_from(host);
  const model::Transformer cpu_model(config, dims, grid.tp(), cpu_kernels);
  const model::Transformer device_model(config, dims, grid.tp(), device_kernels);
  Generator cpu(grid, cpu_model, host), device(grid, device_model, weights);
  const std::vector<std::vector<std::int32_t>> prompts = {testing::random_ids(5, 37, 1), testing::random_ids(3, 37, 2)};
  GenerationParams params;
  params.sampling.top_k = 4;
  params.sampling.repetition_penalty = 1.2f;
  std::vector<EmulatedDeviceMemory::Traffic> used;
  for (const std::int64_t steps : {2, 6}) {
    params.max_new_tokens = steps;
    const EmulatedDeviceMemory::Traffic before = memory.traffic();
    const std::vector<Generation> got = device.generate(prompts, {0, 1}, params);
    used.push_back({memory.traffic().from_host - before.from_host, memory.traffic().to_host - before.to_host,
                    memory.traffic().allocations - before.allocations});
    const std::vector<Generation> want = cpu.generate(prompts, {0, 1}, params);
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      ASSERT_EQ(got[i].tokens.size(), static_cast<std::size_t>(steps));  // no EOS: every step samples
      EXPECT_EQ(got[i].tokens, want[i].tokens);
      EXPECT_EQ(got[i].logprobs, want[i].logprobs);
    }
  }
  EXPECT_EQ(used[1].from_host - used[0].from_host, 2u * 4);  // four more steps
  EXPECT_EQ(used[1].to_host - used[0].to_host, 1u * 4);
  EXPECT_EQ(used[1].allocations, used[0].allocations);  // ... and no device memory allocated (nor zeroed) for them
}

}  // namespace
}  // namespace spin::generate
