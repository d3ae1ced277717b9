// Run with 4 ranks. spin plan's cpu figures (and its cuda ones, with bf16 products) against
// what the CPU path really allocates after a SPIN step: the policy, gradient and reference buffers, the AdamW moments (plain and
// distributed), the 1F1B activation ring of each stage, and the generation KV cache -- exact, on
// layouts with TP, PP and DP, tied and untied embeddings, padded vocabulary shards; generation
// buffers are bounded by the plan.
#include <gtest/gtest.h>

#include <type_traits>

#include "common/spin_fixture.h"
#include "core/error.h"
#include "mpi/mpi_test.h"
#include "train/memory_plan.h"

namespace spin::train {
namespace {

constexpr int kPrompt = 5, kNew = 4;  // every sequence: 5 prompt tokens + 4 response tokens

std::vector<data::Example> fixed_length_examples(int n) {
  std::vector<data::Example> out;
  for (int i = 0; i < n; ++i) {
    data::Example e;
    e.prompt = testing::random_ids(kPrompt, 37, 100 + 2 * static_cast<std::uint32_t>(i));
    e.response = testing::random_ids(kNew - 1, 37, 101 + 2 * static_cast<std::uint32_t>(i));
    e.response.push_back(2);
    out.push_back(e);
  }
  return out;
}

// The CUDA path's mixed-precision layout, as the CPU runs it with bf16 products: everything as
// Precision::cuda() but attention, which keeps its probabilities on the CPU.
Precision cpu_bf16() {
  Precision p = Precision::cuda();
  p.attention_probs = true;
  return p;
}

using Family = testing::TinyFamily;

template <class Setup = testing::SpinSetup>
void check(parallel::Communicator& world, parallel::Layout layout, bool distributed, bool tied, bool mixed = false,
           bool recompute = false, bool sequence_parallel = false, std::int64_t logits_chunk = 0,
           Family family = Family::Llama, std::int64_t step_tokens = 0, const model::LoraConfig& lora = {},
           std::int64_t recompute_layers = 0, model::WeightStorage reference_storage = model::WeightStorage::Float32,
           std::int64_t micro_batch_tokens = 0, int chunks = 1) {
  const bool frozen = reference_storage == model::WeightStorage::FrozenBf16;
  SCOPED_TRACE(cat("tp ", layout.tp, " pp ", layout.pp, " ep ", layout.ep, distributed ? " distributed" : "",
                   tied ? " tied" : "", mixed ? " bf16" : "", recompute ? " recompute" : "",
                   sequence_parallel ? " sequence parallel" : "", " logits chunk ", logits_chunk, " ",
                   testing::tiny_family_name(family), " step tokens ", step_tokens, lora.enabled() ? " LoRA" : "",
                   " recomputed layers ", recompute_layers, frozen ? " frozen bf16 reference" : "",
                   " micro-batch tokens ", micro_batch_tokens, " chunks ", chunks));
  SpinConfig spin;
  spin.kl_penalty = {0.5};
  spin.global_batch = 8;
  spin.micro_batch = micro_batch_tokens > 0 ? 4 : 2;  // by tokens: the cap cuts
  spin.micro_batch_tokens = micro_batch_tokens;
  spin.rollout_batch = 2;
  spin.rollout_step_tokens = step_tokens;
  spin.generation.max_new_tokens = kNew;
  spin.generation.min_new_tokens = kNew;  // every generated response has exactly kNew tokens
  spin.generation.eos_ids = {2};
  testing::TinyShape shape;
  shape.hidden = 32;
  shape.intermediate = 48;
  shape.layers = 4;
  shape.tie = tied;
  shape.family = family;
  Setup s = [&] {
    if constexpr (std::is_same_v<Setup, testing::LoraSpinSetup>) {
      return Setup(world, layout, spin, shape, distributed, fixed_length_examples(16), lora, reference_storage);
    } else {
      return Setup(world, layout, spin, shape, distributed, fixed_length_examples(16), nullptr,
                   OptimizerAlgorithm::AdamW, reference_storage, chunks);
    }
  }();
  s.transformer.set_recompute_activations(recompute, recompute_layers);
  s.transformer.set_sequence_parallel(sequence_parallel);
  s.transformer.set_logits_chunk_rows(logits_chunk);
  if (mixed) {
    s.trained().enable_bf16(s.k);
    s.reference.enable_bf16(s.k);
  }
  s.trainer.step(0, 0, 0, 1e-3);
  s.trainer.step(0, 0, 1, 1e-3);

  PlanRequest request;
  request.config = s.config;
  request.tp = s.grid.tp_size();
  request.pp = s.grid.pp_size();
  request.dp = s.grid.dp_size();
  request.ep = s.grid.ep_size();
  request.vpp = chunks;
  request.micro_batch = spin.micro_batch;
  request.micro_batch_tokens = micro_batch_tokens;
  request.seq = kPrompt + kNew;
  request.prompt = kPrompt;
  request.global_batch = spin.global_batch;
  request.rollout_batch = spin.rollout_batch;
  request.rollout_step_tokens = step_tokens;
  request.distributed_optimizer = distributed;
  request.precision = mixed ? cpu_bf16() : Precision::cpu();
  request.recompute_activations = recompute;
  request.recompute_num_layers = recompute_layers;
  request.sequence_parallel = sequence_parallel;
  request.logits_chunk_rows = logits_chunk;
  request.lora = lora;
  request.frozen_bf16 = frozen;
  const MemoryPlan plan = plan_memory(request);
  ASSERT_EQ(plan.stages.size(), static_cast<std::size_t>(request.pp));
  const StagePlan& p = plan.stages[static_cast<std::size_t>(s.grid.pp_rank())];

  const auto bytes = [](const model::ModelWeights& w) { return static_cast<std::int64_t>(w.flat().nbytes()); };
  const auto bytes16 = [](const model::ModelWeights& w) {
    return w.has_bf16() ? static_cast<std::int64_t>(w.flat_bf16().nbytes()) : 0;
  };
  // float32: the weights are the masters; bf16: the products' copy, beside float32 masters.
  EXPECT_EQ(p.weights, mixed ? bytes16(s.trained()) : bytes(s.trained()));
  EXPECT_EQ(p.masters, mixed ? bytes(s.trained()) : 0);
  EXPECT_EQ(p.grads, bytes(s.grads));
  EXPECT_EQ(p.reference, bytes(s.reference) + bytes16(s.reference));
  if (frozen) {  // the float32 buffer: the embedding and the vectors alone
    EXPECT_TRUE(s.reference.frozen());
    EXPECT_LT(bytes(s.reference), bytes16(s.reference));
  }
  EXPECT_EQ(p.optimizer, static_cast<std::int64_t>(s.optimizer.state_bytes()));
  if constexpr (requires { s.transformers; }) {  // each chunk's Transformer its own tables
    for (const model::Transformer* t : s.transformers.chunks()) {
      EXPECT_EQ(p.rope, static_cast<std::int64_t>(t->rope_bytes()));
    }
  } else {
    EXPECT_EQ(p.rope, static_cast<std::int64_t>(s.transformer.rope_bytes()));
  }
  EXPECT_EQ(p.micro_batches_in_flight, s.trainer.pipeline().activation_sets());
  if (chunks == 1) {
    EXPECT_EQ(p.micro_batches_in_flight, s.trainer.pipeline().peak_live_micro_batches());
  }
  EXPECT_EQ(p.activations, static_cast<std::int64_t>(s.trainer.pipeline().activation_bytes()));
  const generate::GenerationStats& g = s.trainer.generator().stats();
  EXPECT_EQ(p.kv_cache, static_cast<std::int64_t>(g.kv_cache_bytes));
  EXPECT_GT(g.buffer_bytes, 0u);
  EXPECT_LE(static_cast<std::int64_t>(g.buffer_bytes), p.generation);
  if (step_tokens > 0) {  // a tighter bound than a whole rollout's prefill
    request.rollout_step_tokens = 0;
    EXPECT_LT(p.generation, plan_memory(request).stages[static_cast<std::size_t>(s.grid.pp_rank())].generation);
  }
}

TEST(MemoryPlan, CpuFiguresEqualTheCpuPathsAllocations) {
  auto& world = testing::mpi_world();
  check(world, {2, 2, 1}, false, false);
  check(world, {1, 2, 2}, true, false);
  check(world, {2, 1, 2}, true, true);
  check(world, {1, 4, 1}, false, true);
  check(world, {1, 1, 4}, false, false);
  check(world, {1, 1, 4}, true, false);
}

// Prompts prefilled 3 tokens a call: the generation buffers stay within the plan's smaller bound.
TEST(MemoryPlan, ChunkedPrefillFiguresBoundTheAllocations) {
  auto& world = testing::mpi_world();
  check(world, {2, 2, 1}, false, false, false, false, false, 0, Family::Llama, 3);
  check(world, {1, 1, 4}, false, false, true, false, false, 0, Family::Llama, 3);
}

// Interleaved stages (two model chunks a stage): the stage's parameters over its chunks, the warm-up + 1
// micro-batch-chunks in flight, each set of buffers the largest chunk's and the head on the last stage
// (every set takes the last chunk's micro-batches in turn), a KV cache a chunk.
TEST(MemoryPlan, InterleavedStagesFiguresEqualTheAllocations) {
  auto& world = testing::mpi_world();
  const auto f32 = model::WeightStorage::Float32;
  check(world, {2, 2, 1}, false, true, false, false, false, 0, Family::Llama, 0, {}, 0, f32, 0, 2);
  check(world, {1, 2, 2}, false, false, false, false, false, 0, Family::Llama, 0, {}, 0, f32, 0, 2);
  check(world, {1, 2, 2}, true, false, true, false, false, 0, Family::Llama, 0, {}, 0, f32, 0, 2);
}

// Micro-batches by tokens: 36 tokens, two pairs of 2 x 9 tokens, where the fixed count would hold 4 --
// the ring's buffers those of two pairs, as many in flight as the plan counts.
TEST(MemoryPlan, MicroBatchesByTokensFiguresEqualTheAllocations) {
  auto& world = testing::mpi_world();
  const auto f32 = model::WeightStorage::Float32;
  check(world, {2, 2, 1}, false, false, false, false, false, 0, Family::Llama, 0, {}, 0, f32, 36);
  check(world, {1, 2, 2}, true, true, true, false, false, 0, Family::Llama, 0, {}, 0, f32, 36);
}

// With activation recomputation the 1F1B ring keeps each layer's input and one set of layer
// buffers per micro-batch in flight: the plan counts exactly that -- and with only each stage's
// first 1, 2 or 3 layers recomputed, their inputs, their one set and the other layers' own sets.
TEST(MemoryPlan, RecomputationFiguresEqualTheAllocations) {
  auto& world = testing::mpi_world();
  check(world, {2, 2, 1}, false, false, false, true);
  check(world, {1, 4, 1}, false, true, true, true);
  check(world, {2, 2, 1}, false, false, false, true, false, 0, Family::Llama, 0, {}, 1);
  check(world, {1, 1, 4}, false, false, true, true, false, 0, Family::Llama, 0, {}, 3);
  check(world, {1, 2, 2}, true, true, false, true, true, 0, Family::Llama, 0, {}, 2);
}

// spin plan's cuda figures, but for attention's probabilities, against what the same code
// allocates with bf16 products: the bf16 weight copies, float32 masters, the activations with
// the products' inputs in bf16 alone, the bf16 KV cache.
TEST(MemoryPlan, MixedPrecisionFiguresEqualTheAllocations) {
  auto& world = testing::mpi_world();
  check(world, {2, 2, 1}, false, false, true);
  check(world, {1, 2, 2}, true, true, true);
  check(world, {1, 1, 4}, false, false, true);
}

// The reference in bf16 alone (model::WeightStorage::FrozenBf16): its bf16 values in the layout (DP
// padding included) and its float32-read tensors -- stage 0's embedding shard, the norms, Qwen2's
// biases, Mixtral's router and experts in bf16 --; LoRA's base likewise.
TEST(MemoryPlan, FrozenReferenceFiguresEqualTheAllocations) {
  auto& world = testing::mpi_world();
  const auto frozen = model::WeightStorage::FrozenBf16;
  check(world, {2, 2, 1}, false, false, true, false, false, 0, Family::Llama, 0, {}, 0, frozen);
  check(world, {1, 2, 2}, true, true, true, false, false, 0, Family::Qwen2, 0, {}, 0, frozen);
  check(world, {2, 1, 2}, true, false, true, false, true, 0, Family::Mixtral, 0, {}, 0, frozen);
  check<testing::LoraSpinSetup>(world, {2, 2, 1}, false, true, true, false, false, 0, Family::Llama, 0,
                                testing::tiny_lora(4), 0, frozen);
}

// Sequence parallelism: the residual stream, the norms' statistics, the stage outputs and the
// recomputation's kept inputs at 1/tp of the rows, the norms' outputs gathered, the full-rows
// scratch.
TEST(MemoryPlan, SequenceParallelFiguresEqualTheAllocations) {
  auto& world = testing::mpi_world();
  check(world, {2, 2, 1}, false, false, false, false, true);
  check(world, {2, 1, 2}, true, true, true, false, true);
  check(world, {2, 2, 1}, false, false, true, true, true);
}

// Logits in chunks of 7 rows (of 36 per micro-batch): the head's logits and their bf16 gradient
// for 7 rows.
TEST(MemoryPlan, LogitsChunkFiguresEqualTheAllocations) {
  auto& world = testing::mpi_world();
  check(world, {2, 2, 1}, false, false, true, false, false, 7);
  check(world, {1, 1, 4}, true, true, false, false, false, 7);
}

// Qwen2's q/k/v biases (parameters, gradients, masters, moments), Qwen3's head norms (their
// weights, q and k before them with their statistics, and the backward's scratch) and Gemma 2's
// output norms (their weights, the outputs before them with their statistics, the gradient
// before them); Gemma 3 has both; Phi-4-mini's RoPE tables cover the rotated half of a head;
// Granite's residual multiplier the backward's scratch for a half's output gradient; OLMo 2 its
// q and k norms' split weights, float32 q and k before them and the backward's per-row sums, its
// two norms a layer, and in float32 no input norms' outputs (the products read the stream).
// OLMo: no norm weights at all (its LayerNorms have none); StableLM: a bias beside every norm
// weight, and the sequence-parallel scratch for both gradients; with a parallel residual one norm
// (and its output and statistics) a layer.
TEST(MemoryPlan, Qwen2AndQwen3FiguresEqualTheAllocations) {
  auto& world = testing::mpi_world();
  check(world, {2, 2, 1}, true, true, true, false, false, 0, Family::Qwen2);
  check(world, {2, 2, 1}, false, false, false, false, false, 0, Family::Qwen3);
  check(world, {1, 2, 2}, true, true, true, false, false, 0, Family::Qwen3);
  check(world, {2, 1, 2}, false, false, true, true, true, 0, Family::Qwen3);
  check(world, {2, 2, 1}, false, true, true, false, false, 0, Family::Gemma2);
  check(world, {2, 1, 2}, true, true, false, true, true, 0, Family::Gemma2);
  check(world, {2, 2, 1}, true, true, true, false, false, 0, Family::Gemma3);
  check(world, {2, 2, 1}, true, true, true, false, false, 0, Family::Phi4Mini);  // a half-width RoPE table
  check(world, {2, 1, 2}, true, true, false, true, true, 0, Family::Granite);
  check(world, {2, 2, 1}, true, true, false, false, false, 0, Family::Olmo);  // no norm weights: PP splits none
  check(world, {2, 1, 2}, false, false, true, true, true, 0, Family::Olmo);
  check(world, {2, 2, 1}, true, false, true, false, false, 0, Family::Olmo2);
  check(world, {2, 1, 2}, false, false, true, true, true, 0, Family::Olmo2);
  check(world, {2, 2, 1}, true, false, true, false, false, 0, Family::StableLm);  // norm biases, q/k/v biases
  check(world, {2, 1, 2}, false, false, true, true, true, 0, Family::StableLm);
  check(world, {2, 2, 1}, true, false, true, false, false, 0, Family::StableLmParallel);  // one norm a layer
  check(world, {2, 1, 2}, false, false, false, true, true, 0, Family::StableLmParallel);
  check(world, {2, 2, 1}, true, true, true, false, false, 0, Family::Cohere);  // norm weights without biases
  check(world, {2, 1, 2}, true, true, true, true, true, 0, Family::Cohere2);
  check(world, {2, 2, 1}, true, false, true, false, false, 0, Family::GptNeox);  // no gate, biases, two norms
  check(world, {2, 1, 2}, false, false, true, true, true, 0, Family::GptNeoxSequential);
  check(world, {2, 2, 1}, true, false, true, false, false, 0, Family::Phi);  // the LM head's bias, split
  check(world, {1, 2, 2}, false, false, false, false, false, 64, Family::Phi);  // logits in chunks
  check(world, {2, 2, 1}, true, false, false, false, true, 0, Family::Olmo2);  // float32: no input norms' outputs
  check(world, {2, 2, 1}, true, true, true, false, false, 0, Family::Mixtral);  // experts, router, grouped rows
  check(world, {2, 1, 2}, false, false, true, true, true, 0, Family::Mixtral);
  check(world, {2, 2, 1}, true, true, true, false, false, 0, Family::Olmoe);  // its norms across heads, 2 of 4
  check(world, {2, 2, 1}, true, true, true, false, false, 0, Family::Qwen2Moe);  // a shared expert and its gate
  check(world, {2, 1, 2}, false, false, true, true, true, 0, Family::Qwen2Moe);
  // GLM-4.5's: a dense layer (its own width) on stage 0, experts with the correction bias and an ungated
  // shared expert on stage 1; both in one stage.
  check(world, {2, 2, 1}, true, true, true, false, false, 0, Family::Glm4Moe);
  check(world, {2, 1, 2}, false, false, true, true, true, 0, Family::Glm4Moe);
  // DeepSeek-V3's: its latent attention's buffers besides (model/latent_attention.h).
  check(world, {2, 2, 1}, true, true, true, false, false, 0, Family::DeepseekV3);
  check(world, {2, 1, 2}, false, false, true, true, true, 0, Family::DeepseekV3);
  // Expert parallelism: each rank's experts alone, and its grouped rows' buffers for every row's chosen
  // experts among them (2 of 4 at ep 2: each row's k = 2 at most).
  check(world, {2, 2, 1, 2}, true, true, true, false, false, 0, Family::Mixtral);
  check(world, {2, 1, 2, 2}, false, false, false, true, true, 0, Family::DeepseekV3);
  check(world, {2, 2, 1, 2}, true, false, true, false, true, 0, Family::Qwen2Moe);
  check(world, {2, 2, 1}, true, true, true, false, false, 0, Family::CohereQkNorm);  // float32 q, k before the norms
  check(world, {2, 1, 2}, false, false, true, true, true, 0, Family::CohereQkNorm);
  check(world, {2, 2, 1}, true, false, true, false, false, 0, Family::StableLmQkNorm);  // with norm biases
}

// LoRA: the adapters' weights, gradients, masters and moments instead of the model's (the policy
// being the reference + them), and the adapters' kept u and the backward's LoRA scratch in the
// activations -- in float32 and bf16, with ZeRO-1, sequence parallelism and recomputation.
TEST(MemoryPlan, LoraFiguresEqualTheAllocations) {
  auto& world = testing::mpi_world();
  model::LoraConfig lora = testing::tiny_lora(4);
  check<testing::LoraSpinSetup>(world, {2, 2, 1}, false, false, false, false, false, 0, Family::Llama, 0, lora);
  check<testing::LoraSpinSetup>(world, {1, 2, 2}, true, true, true, false, false, 0, Family::Llama, 0, lora);
  check<testing::LoraSpinSetup>(world, {2, 1, 2}, true, false, true, true, true, 0, Family::Qwen3, 0, lora);
  lora.targets = model::parse_lora_targets("q_proj,v_proj,down_proj", "test");
  check<testing::LoraSpinSetup>(world, {2, 2, 1}, false, true, true, false, true, 0, Family::Gemma2, 0, lora);
  // Dropout: each micro-batch's AdapterDropout scratch, [rows, the widest adapted input] -- the MLP's
  // columns with down_proj adapted, the hidden size with q and v alone.
  lora.dropout = 0.1;
  check<testing::LoraSpinSetup>(world, {2, 2, 1}, false, true, true, true, false, 0, Family::Llama, 0, lora);
  lora.targets = model::parse_lora_targets("q_proj,v_proj", "test");
  check<testing::LoraSpinSetup>(world, {2, 1, 2}, true, false, false, false, true, 0, Family::Llama, 0, lora);
  // A mixture's experts adapted (Qwen2-MoE's shared expert too): their u over the grouped rows, their
  // replicated factors' gradient slots, under dropout the grouped rows' keys.
  model::LoraConfig experts = testing::tiny_lora(4);
  check<testing::LoraSpinSetup>(world, {2, 2, 1}, false, false, true, false, true, 0, Family::Qwen2Moe, 0, experts);
  experts.dropout = 0.1;
  check<testing::LoraSpinSetup>(world, {2, 1, 2}, true, false, false, true, false, 0, Family::Mixtral, 0, experts);
  check<testing::LoraSpinSetup>(world, {2, 2, 1}, false, true, true, false, true, 0, Family::Glm4Moe, 0, experts);
  check<testing::LoraSpinSetup>(world, {2, 1, 2, 2}, true, false, true, true, false, 0, Family::Mixtral, 0, experts);
  // DeepSeek-V3's every projection over its frozen latent attention (its scratch for the frozen norms; the
  // replicated factors' slots as wide as its latents where wider than hidden).
  testing::TinyShape deepseek;
  deepseek.family = Family::DeepseekV3;
  model::LoraConfig latent = testing::tiny_lora(testing::tiny_config(deepseek), 4);
  latent.dropout = 0.1;
  check<testing::LoraSpinSetup>(world, {2, 1, 2}, true, true, true, true, false, 0, Family::DeepseekV3, 0, latent);
}

}  // namespace
}  // namespace spin::train
