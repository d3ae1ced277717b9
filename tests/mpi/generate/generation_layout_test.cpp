// Run with 4 ranks. The same seed gives the same responses (tokens, log-probabilities, stops)
// for (TP, PP) = (1, 1), (2, 1), (1, 2), (2, 2), whatever prompts share a replica's batch, in
// what order, how many sequences are in flight at once (continuous batching) and how many
// tokens a model call takes (chunked prefill), and with interleaved stages (two model chunks a stage, a
// step going round the ring twice) -- also for a Phi-3 whose sequences outgrow
// LongRoPE's short context and are fed again on the long factors, for a DeepSeek-V3 generating
// through LoRA adapters of its latent attention, and for mixtures of experts spread over the TP ranks.
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>

#include "common/test_util.h"
#include "common/tiny_model.h"
#include "generate/generator.h"
#include "kernels/cpu/cpu_kernels.h"
#include "mpi/mpi_test.h"
#include "parallel/process_grid.h"

namespace spin::generate {
namespace {

// This rank's stage of the model: its layers in `chunks` model chunks (interleaving) or one range.
struct Model {
  model::ModelConfig config;
  std::vector<model::StageLayers> stage;
  model::TpDims dims;
  kernels::CpuKernels cpu;
  model::ModelWeights weights;
  model::StageTransformers transformers;

  Model(const parallel::ProcessGrid& grid, const model::ModelConfig& c, int chunk_count = 1)
      : config(c),
        stage(model::stage_chunks(model::split_layers(c.num_layers, grid.pp_size() * chunk_count), grid.pp_rank(),
                                  grid.pp_size())),
        dims(model::tp_dims(c, grid.tp_rank(), grid.tp_size(), grid.ep_size())),
        weights(config, dims, stage),
        transformers(config, dims, stage, grid.tp(), cpu) {
    testing::init_tiny_weights(weights, 5, 0.5f);
  }
};

std::vector<std::vector<std::int32_t>> all_prompts() {
  std::vector<std::vector<std::int32_t>> p;
  for (int i = 0; i < 7; ++i) p.push_back(testing::random_ids(static_cast<std::size_t>(1 + (i * 5) % 9), 37, 60 + i));
  return p;
}

testing::TinyShape four_layers(testing::TinyFamily family) {
  testing::TinyShape shape;
  shape.layers = 4;
  shape.family = family;
  return shape;
}

// With `lora`, a LoRA policy's generation: adapters of every projection the model has, random (the same
// global values under any layout), over the frozen model.
std::vector<Generation> run(parallel::Communicator& world, parallel::Layout layout, const testing::TinyShape& shape,
                            const GenerationParams& params, bool reversed, std::int64_t max_batch = 0,
                            std::int64_t max_tokens = 0, bool lora = false, int chunks = 1) {
  const parallel::ProcessGrid grid(world, layout);
  Model m(grid, testing::tiny_config(shape), chunks);
  std::optional<model::ModelWeights> adapters;
  if (lora) {
    adapters.emplace(model::ModelWeights::adapters(m.config, testing::tiny_lora(m.config, 4), m.dims, m.stage));
    testing::randomize_matrices(*adapters, 9, 0.3f);
  }
  Generator generator(grid, m.transformers.chunks(), m.weights, adapters ? &*adapters : nullptr);
  // This replica's prompts: every dp-th, in forward or reverse order.
  const auto prompts = all_prompts();
  std::vector<std::vector<std::int32_t>> mine;
  std::vector<std::uint64_t> ids;
  for (std::size_t i = static_cast<std::size_t>(grid.dp_rank()); i < prompts.size();
       i += static_cast<std::size_t>(grid.dp_size())) {
    mine.push_back(prompts[i]);
    ids.push_back(i);
  }
  if (reversed) {
    std::reverse(mine.begin(), mine.end());
    std::reverse(ids.begin(), ids.end());
  }
  const auto out = generator.generate(mine, ids, params, {max_batch, max_tokens, {}});
  std::vector<Generation> by_id(prompts.size());
  for (std::size_t i = 0; i < ids.size(); ++i) by_id[ids[i]] = out[i];
  return by_id;  // entries of other replicas stay empty
}

TEST(GenerationLayouts, SameTokensForEveryTpAndPpLayoutAndBatch) {
  GenerationParams sampled;
  sampled.max_new_tokens = 9;
  sampled.sampling.top_p = 0.9f;
  sampled.sampling.temperature = 1.2f;
  GenerationParams stopping;
  stopping.max_new_tokens = 9;
  stopping.sampling.top_k = 4;
  stopping.eos_ids = {5, 9};
  stopping.min_new_tokens = 2;
  GenerationParams crossing = sampled;  // the tiny Phi-3's L = 32: every prompt of 4 tokens or more crosses it
  crossing.max_new_tokens = 30;
  const testing::TinyShape llama = four_layers(testing::TinyFamily::Llama), phi3 = four_layers(testing::TinyFamily::Phi3);
  for (const auto& [shape, params] : {std::pair{llama, sampled}, std::pair{llama, stopping}, std::pair{phi3, crossing}}) {
    parallel::SelfCommunicator self;
    const auto reference = run(self, {1, 1, 1}, shape, params, false);
    if (!params.eos_ids.empty()) {  // the stopping case must actually stop some sequences early
      EXPECT_TRUE(std::any_of(reference.begin(), reference.end(),
                              [](const Generation& g) { return g.finish == FinishReason::Eos; }));
    }
    // The last two: interleaved stages, each rank two one-layer chunks, each step going round twice.
    for (const auto& [layout, chunks] :
         {std::pair{parallel::Layout{2, 1, 0}, 1}, std::pair{parallel::Layout{1, 2, 0}, 1},
          std::pair{parallel::Layout{2, 2, 0}, 1}, std::pair{parallel::Layout{1, 2, 0}, 2},
          std::pair{parallel::Layout{2, 2, 0}, 2}}) {
      // All at once, in reverse, 3 in flight; and prefilled in chunks: 3 in flight under 4 tokens
      // per call, 2 under 2 (one token each at pp 1).
      struct Batch {
        bool reversed;
        std::int64_t max_batch, max_tokens;
      };
      for (const Batch& b : {Batch{false, 0, 0}, Batch{true, 0, 0}, Batch{false, 3, 0}, Batch{false, 3, 4},
                             Batch{true, 2, 2}}) {
        const auto got = run(spin::testing::mpi_world(), layout, shape, params, b.reversed, b.max_batch, b.max_tokens,
                             false, chunks);
        for (std::size_t i = 0; i < got.size(); ++i) {
          if (got[i].tokens.empty()) continue;  // another replica's prompt
          EXPECT_EQ(got[i].tokens, reference[i].tokens)
              << "prompt " << i << " at tp " << layout.tp << ", pp " << layout.pp << " x " << chunks
              << " chunks, max batch " << b.max_batch << ", max tokens " << b.max_tokens;
          EXPECT_EQ(got[i].finish, reference[i].finish);
          testing::expect_close(got[i].logprobs, reference[i].logprobs, 1e-5, 1e-5, "logprobs");
        }
      }
    }
  }
}

// Expert parallelism within the TP group (each TP rank half the experts): the same tokens -- every row routed
// on every rank, each rank's experts' outputs alone in its partial sums -- for Mixtral, Qwen2-MoE's shared
// expert and DeepSeek-V3 through LoRA adapters of its experts, with continuous batching and chunked prefill.
TEST(GenerationLayouts, ExpertParallelismSameTokensAtEveryLayout) {
  GenerationParams sampled;
  sampled.max_new_tokens = 9;
  sampled.sampling.top_p = 0.9f;
  sampled.sampling.temperature = 1.2f;
  for (const testing::TinyFamily family :
       {testing::TinyFamily::Mixtral, testing::TinyFamily::Qwen2Moe, testing::TinyFamily::DeepseekV3}) {
    SCOPED_TRACE(testing::tiny_family_name(family));
    const testing::TinyShape shape = four_layers(family);
    const bool lora = family == testing::TinyFamily::DeepseekV3;
    parallel::SelfCommunicator self;
    const auto reference = run(self, {1, 1, 1}, shape, sampled, false, 0, 0, lora);
    for (parallel::Layout layout : {parallel::Layout{2, 1, 0, 2}, parallel::Layout{2, 2, 0, 2}}) {
      for (const std::int64_t max_tokens : {0, 4}) {
        const auto got = run(spin::testing::mpi_world(), layout, shape, sampled, false, 3, max_tokens, lora);
        for (std::size_t i = 0; i < got.size(); ++i) {
          if (got[i].tokens.empty()) continue;  // another replica's prompt
          EXPECT_EQ(got[i].tokens, reference[i].tokens)
              << "prompt " << i << " at tp " << layout.tp << ", pp " << layout.pp << ", ep " << layout.ep;
          testing::expect_close(got[i].logprobs, reference[i].logprobs, 1e-5, 1e-5, "logprobs");
        }
      }
    }
  }
}

}  // namespace
}  // namespace spin::generate

namespace spin::generate {
namespace {

// DeepSeek-V3's latent attention with LoRA adapters of every projection (generation's absorbed cache, kv_b_proj's
// adapter's terms on each rank's heads): the same tokens at TP 2 and under TP 2 x PP 2 as on one rank.
TEST(GenerationLayouts, LatentAttentionLoraAdaptersSameTokensAtEveryLayout) {
  GenerationParams sampled;
  sampled.max_new_tokens = 8;
  sampled.sampling.temperature = 1.1f;
  const testing::TinyShape deepseek = four_layers(testing::TinyFamily::DeepseekV3);
  parallel::SelfCommunicator self;
  const auto reference = run(self, {1, 1, 1}, deepseek, sampled, false, 0, 0, true);
  const auto plain = run(self, {1, 1, 1}, deepseek, sampled, false);
  bool differs = false;
  for (std::size_t i = 0; i < plain.size(); ++i) differs = differs || plain[i].logprobs != reference[i].logprobs;
  EXPECT_TRUE(differs) << "the adapters change nothing";
  for (const auto& [layout, chunks] : {std::pair{parallel::Layout{2, 1, 0}, 1}, std::pair{parallel::Layout{2, 2, 0}, 1},
                                       std::pair{parallel::Layout{1, 2, 0}, 2}}) {
    const auto got = run(spin::testing::mpi_world(), layout, deepseek, sampled, false, 3, 4, true, chunks);
    for (std::size_t i = 0; i < got.size(); ++i) {
      if (got[i].tokens.empty()) continue;  // another replica's prompt
      EXPECT_EQ(got[i].tokens, reference[i].tokens) << "prompt " << i << " at tp " << layout.tp << ", pp " << layout.pp;
      testing::expect_close(got[i].logprobs, reference[i].logprobs, 1e-5, 1e-5, "logprobs");
    }
  }
}

}  // namespace
}  // namespace spin::generate
