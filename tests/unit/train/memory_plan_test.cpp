// spin plan's arithmetic on real model shapes (the cpu figures are checked against real
// allocations in tests/mpi/train/memory_plan_test.cpp).
#include "train/memory_plan.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "common/test_util.h"
#include "core/error.h"
#include "model/flops.h"

namespace spin::train {
namespace {

model::ModelConfig llama2_7b() {
  return model::ModelConfig::from_json(
      R"({"vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
          "num_attention_heads": 32, "num_key_value_heads": 32, "max_position_embeddings": 4096,
          "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false})",
      "Llama-2-7b config");
}

PlanRequest request(int tp, int pp, int dp, bool distributed) {
  PlanRequest r;
  r.config = llama2_7b();
  r.tp = tp, r.pp = pp, r.dp = dp;
  r.micro_batch = 1;
  r.seq = 2048;
  r.distributed_optimizer = distributed;
  return r;
}

TEST(MemoryPlan, ParametersOverAllRanksAreTheModels) {
  // 6,738,415,616 parameters (Hugging Face's count for Llama-2-7b). Every TP rank holds the 65
  // norm vectors whole; otherwise shards add only alignment.
  EXPECT_EQ(llama2_7b().num_parameters(), 6738415616);
  const std::int64_t norms = 65 * 4096;
  for (auto [tp, pp] : {std::pair{1, 1}, {8, 1}, {4, 2}, {2, 4}}) {
    const MemoryPlan plan = plan_memory(request(tp, pp, 1, false));
    std::int64_t total = 0;
    for (const StagePlan& s : plan.stages) total += s.params * tp;
    const std::int64_t expected = 6738415616 + (tp - 1) * norms;
    EXPECT_GE(total, expected) << tp << " x " << pp;
    EXPECT_LT(total, expected + 16 * 300 * tp) << tp << " x " << pp;  // < 16 elements per tensor
  }
}

TEST(MemoryPlan, BytesPerParameterFollowMegatronsMixedPrecisionTable) {
  // Megatron-LM's distributed optimizer doc: bf16 params + fp32 grads: 18 bytes per parameter
  // without the distributed optimizer, 6 + 12 / d with it. spin's distributed optimizer shards
  // the moments only (the float32 masters stay whole: the forward reads the embedding and the
  // norms from them), so 10 + 8 / d.
  for (int dp : {1, 2, 8}) {
    for (bool distributed : {false, true}) {
      const StagePlan s = plan_memory(request(8, 1, dp, distributed)).stages[0];
      const double per_param = static_cast<double>(s.weights + s.grads + s.masters + s.optimizer) /
                               static_cast<double>(s.params);
      EXPECT_NEAR(per_param, distributed ? 10.0 + 8.0 / dp : 18.0, 1e-9) << dp;
    }
  }
  // The reference, a model like the policy (float32 values and their bf16 copy) on the device,
  // or its float32 values alone on the host when offloaded.
  PlanRequest r = request(8, 1, 1, false);
  EXPECT_EQ(plan_memory(r).stages[0].reference, 6 * plan_memory(r).stages[0].params);
  r.ref_offload = true;
  const StagePlan off = plan_memory(r).stages[0];
  EXPECT_EQ(off.reference, 0);
  EXPECT_EQ(off.reference_host, 4 * off.params);
}

TEST(MemoryPlan, OneFOneBKeepsPpMinusStageMicroBatchesAndKvCacheFollowsTheShape) {
  PlanRequest r = request(2, 4, 1, false);
  r.global_batch = 64;  // 64 micro-batches of 1
  r.rollout_batch = 16;
  const MemoryPlan plan = plan_memory(r);
  for (const StagePlan& s : plan.stages) {
    EXPECT_EQ(s.micro_batches_in_flight, 4 - s.stage);
    EXPECT_EQ(s.activations, s.activations_per_micro_batch * (4 - s.stage));
    // K and V: 8 layers x 16 sequences x 2048 positions x 16 heads x 128 x bf16.
    EXPECT_EQ(s.kv_cache, 2LL * 8 * 16 * 2048 * 16 * 128 * 2);
  }
  r.global_batch = 2;  // two micro-batches: at most two in flight anywhere
  EXPECT_EQ(plan_memory(r).stages[0].micro_batches_in_flight, 2);
  // Flash-style attention keeps no seq x seq probabilities: activations grow linearly in seq.
  r.global_batch = 0;
  r.seq = 1024;
  const std::int64_t half = plan_memory(r).stages[1].activations_per_micro_batch;
  r.seq = 2048;
  EXPECT_EQ(plan_memory(r).stages[1].activations_per_micro_batch, 2 * half);
  r.precision = Precision::cpu();  // the CPU path keeps them: more than linear
  r.seq = 1024;
  const std::int64_t cpu_half = plan_memory(r).stages[1].activations_per_micro_batch;
  r.seq = 2048;
  EXPECT_GT(plan_memory(r).stages[1].activations_per_micro_batch, 2 * cpu_half);
}

// Micro-batches by tokens: a micro-batch holds at most the cap's rows, or one pair (2 x seq) where the
// cap is less -- a micro-batch of B pairs' buffers shrink to those of fewer -- and every micro-batch
// of the step, one a pair at most, may be in flight.
TEST(MemoryPlan, MicroBatchesByTokensHoldTheCapsRows) {
  for (const Precision& precision : {Precision::cuda(), Precision::cpu()}) {  // probabilities not kept, kept
    PlanRequest r = request(2, 4, 1, false);
    r.precision = precision;
    r.global_batch = 16;
    r.micro_batch = 4;  // 4 micro-batches of 4 pairs: 8 x 2048 rows each
    const auto per_micro_batch = [&](std::int64_t micro_batch, std::int64_t tokens) {
      PlanRequest q = r;
      q.micro_batch = micro_batch;
      q.micro_batch_tokens = tokens;
      return plan_memory(q).stages[1].activations_per_micro_batch;
    };
    EXPECT_EQ(per_micro_batch(4, 4 * 2048), per_micro_batch(2, 0)) << "8192 tokens: 2 pairs' rows";
    EXPECT_EQ(per_micro_batch(4, 1000), per_micro_batch(1, 0)) << "below one pair: a pair alone";
    EXPECT_EQ(per_micro_batch(4, 100 * 2048), per_micro_batch(4, 0)) << "above the pairs' rows: those";
    r.micro_batch_tokens = 4096;
    r.pp = 8, r.global_batch = 4, r.micro_batch = 4;  // one micro-batch of 4 pairs, or up to 4 by tokens
    const MemoryPlan plan = plan_memory(r);
    EXPECT_EQ(plan.micro_batches, 1);
    EXPECT_EQ(plan.stages[0].micro_batches_in_flight, 4);
    EXPECT_EQ(plan.stages[6].micro_batches_in_flight, 2);
  }
}

// A head size the fused CUDA kernels do not take (here 80) runs the cuBLAS path on a GPU, which
// keeps heads x len^2 probabilities for the backward: the plan counts them as it does where it
// is told attention keeps them; at head_dim 128 the fused kernels keep a log-sum-exp per head
// and row instead -- 32 layers x (2 x 1024^2 x 32 - 2 x 1024 x 32) floats less.
TEST(MemoryPlan, HeadSizesWithoutFusedAttentionKeepTheProbabilities) {
  PlanRequest r = request(1, 1, 1, false);
  r.seq = 1024;
  PlanRequest keeping = r;
  keeping.precision.attention_probs = true;
  const auto activations = [](const PlanRequest& q) { return plan_memory(q).stages[0].activations_per_micro_batch; };
  EXPECT_EQ(activations(keeping) - activations(r), 32 * (2LL * 1024 * 1024 * 32 - 2LL * 1024 * 32) * 4);
  r.config.head_dim = keeping.config.head_dim = 80;
  EXPECT_EQ(activations(r), activations(keeping));
  EXPECT_TRUE(attention_keeps_probs(Precision::cuda(), 80));
  EXPECT_FALSE(attention_keeps_probs(Precision::cuda(), 64));
  EXPECT_FALSE(attention_keeps_probs(Precision::cuda(), 256));  // Gemma's
  EXPECT_TRUE(attention_keeps_probs(Precision::cpu(), 64));
}

TEST(MemoryPlan, SuggestedLayoutsFitAndPreferFewModelParallelRanks) {
  const std::int64_t gib = std::int64_t{1} << 30;
  const std::vector<LayoutFit> fits = fitting_layouts(request(1, 1, 1, false), 16, 8, 80 * gib);
  ASSERT_FALSE(fits.empty());
  for (const LayoutFit& f : fits) {
    EXPECT_EQ(f.tp * f.pp * f.dp, 16);
    EXPECT_LE(f.tp, 8);
    PlanRequest r = request(f.tp, f.pp, f.dp, f.distributed_optimizer);
    r.sequence_parallel = f.sequence_parallel;
    r.recompute_activations = f.recompute_activations;
    r.recompute_num_layers = f.recompute_num_layers;
    EXPECT_EQ(plan_memory(r).peak(), f.peak);
    if (f.tp == 1) {
      EXPECT_FALSE(f.sequence_parallel);
    }
    EXPECT_LE(f.peak, 80 * gib);
  }
  for (std::size_t i = 1; i < fits.size(); ++i) {
    EXPECT_LE(fits[i - 1].tp * fits[i - 1].pp, fits[i].tp * fits[i].pp);
  }
  // 18 bytes per parameter do not fit 80 GiB without sharding: TP 1 x PP 1 only with ZeRO-1.
  for (const LayoutFit& f : fits) {
    if (f.tp == 1 && f.pp == 1) {
      EXPECT_TRUE(f.distributed_optimizer);
    }
  }
  EXPECT_TRUE(fitting_layouts(request(1, 1, 1, false), 16, 8, 4 * gib).empty());
  // Where nothing cheaper fits, sequence parallelism is offered, and after it activation
  // recomputation -- and only there.
  for (const std::int64_t capacity : {80 * gib, 24 * gib, 20 * gib}) {
    for (const LayoutFit& f : fitting_layouts(request(1, 1, 1, false), 16, 8, capacity)) {
      PlanRequest r = request(f.tp, f.pp, f.dp, f.dp > 1);
      r.sequence_parallel = f.tp > 1;
      if (f.recompute_activations) {
        EXPECT_GT(plan_memory(r).peak(), capacity) << f.tp << " x " << f.pp;
      }
      r.sequence_parallel = false;
      r.recompute_activations = f.recompute_activations;
      r.recompute_num_layers = f.recompute_num_layers;
      if (f.sequence_parallel) {
        EXPECT_GT(plan_memory(r).peak(), capacity) << f.tp << " x " << f.pp;
      }
    }
  }
  const std::vector<LayoutFit> tight = fitting_layouts(request(1, 1, 1, false), 16, 8, 24 * gib);
  ASSERT_FALSE(tight.empty());
  EXPECT_TRUE(std::any_of(tight.begin(), tight.end(), [](const LayoutFit& f) { return f.sequence_parallel; }));
  const std::vector<LayoutFit> tighter = fitting_layouts(request(1, 1, 1, false), 16, 8, 20 * gib);
  ASSERT_FALSE(tighter.empty());
  EXPECT_TRUE(std::any_of(tighter.begin(), tighter.end(), [](const LayoutFit& f) { return f.recompute_activations; }));
  // Recomputation added: of as few of each stage's first layers as fit (0: all of them) -- one
  // fewer does not fit -- and the peak is that plan's.
  bool partial = false;
  for (const std::int64_t capacity : {22 * gib, 21 * gib, 20 * gib, 19 * gib, 18 * gib}) {
    for (const LayoutFit& f : fitting_layouts(request(1, 1, 1, false), 16, 8, capacity)) {
      if (!f.recompute_activations) continue;
      PlanRequest r = request(f.tp, f.pp, f.dp, f.distributed_optimizer);
      r.sequence_parallel = f.sequence_parallel;
      r.recompute_activations = true;
      r.recompute_num_layers = f.recompute_num_layers;
      EXPECT_EQ(plan_memory(r).peak(), f.peak) << f.tp << " x " << f.pp;
      const std::int64_t stage_layers = (r.config.num_layers + f.pp - 1) / f.pp;
      r.recompute_num_layers = (f.recompute_num_layers > 0 ? f.recompute_num_layers : stage_layers) - 1;
      if (r.recompute_num_layers > 1) {
        EXPECT_GT(plan_memory(r).peak(), capacity) << f.tp << " x " << f.pp << ": fewer layers fit";
      }
      partial = partial || f.recompute_num_layers > 0;
    }
  }
  EXPECT_TRUE(partial) << "no capacity let recomputation stop short of every layer";
}

// A rollout of 64 sequences prefilled at once: 64 x 2048 rows of generation buffers set the
// peak. Chunked prefill -- generation calls of a micro-batch's 4096 rows -- is offered after
// the distributed optimizer and sequence parallelism and before recomputation, and only where
// the layout does not fit without it.
TEST(MemoryPlan, SuggestedLayoutsOfferChunkedPrefillBeforeRecomputation) {
  const std::int64_t gib = std::int64_t{1} << 30;
  PlanRequest big = request(1, 1, 1, false);
  big.rollout_batch = 64;
  big.global_batch = 64 * 16;
  EXPECT_EQ(chunked_prefill_tokens(big), 2 * 1 * 2048);
  bool offered = false;
  for (const std::int64_t capacity : {80 * gib, 40 * gib, 30 * gib, 24 * gib}) {
    for (const LayoutFit& f : fitting_layouts(big, 16, 8, capacity)) {
      PlanRequest r = big;
      r.tp = f.tp, r.pp = f.pp, r.dp = f.dp;
      r.distributed_optimizer = f.distributed_optimizer;
      r.sequence_parallel = f.sequence_parallel;
      r.rollout_step_tokens = f.rollout_step_tokens;
      r.recompute_activations = f.recompute_activations;
      r.recompute_num_layers = f.recompute_num_layers;
      EXPECT_EQ(plan_memory(r).peak(), f.peak) << f.tp << " x " << f.pp;
      if (f.rollout_step_tokens > 0) {
        offered = true;
        EXPECT_EQ(f.rollout_step_tokens, 4096);
        r.rollout_step_tokens = 0;
        EXPECT_GT(plan_memory(r).peak(), capacity) << f.tp << " x " << f.pp << ": fits without";
      }
      if (f.recompute_activations) {
        r.recompute_activations = false;
        r.rollout_step_tokens = chunked_prefill_tokens(r);
        EXPECT_GT(plan_memory(r).peak(), capacity) << f.tp << " x " << f.pp << ": fits with chunks alone";
      }
    }
  }
  EXPECT_TRUE(offered) << "no capacity made chunked prefill the addition that fits";
  big.pp = 4;
  big.rollout_batch = 32;
  big.seq = 2;  // a micro-batch of 4 rows is below the 8 sequences one call holds at pp 4
  EXPECT_EQ(chunked_prefill_tokens(big), 8);
}

// LoRA in bf16 on one GPU: the base held in bf16 alone (--frozen-dtype bf16) is offered where nothing
// that changes no result fits, before recomputation -- Llama 2 7B at rank 16 fits 32 GiB so (4 bytes a
// parameter fewer: 25 GiB less) and not without. A full fine-tuning request is never offered it (its
// reference is the request's), nor a float32 one.
TEST(MemoryPlan, SuggestedLayoutsOfferLorasBaseInBf16BeforeRecomputation) {
  const std::int64_t gib = std::int64_t{1} << 30;
  PlanRequest lora = request(1, 1, 1, false);
  lora.seq = 1024;
  lora.lora.rank = 16;
  lora.lora.targets = model::lora_targets_of_model(lora.config, model::parse_lora_targets("all-linear", "test"),
                                                   "all-linear", "test");
  const std::vector<LayoutFit> fits = fitting_layouts(lora, 1, 8, 32 * gib);
  ASSERT_EQ(fits.size(), 1u);
  EXPECT_TRUE(fits[0].frozen_bf16);
  EXPECT_FALSE(fits[0].recompute_activations);
  PlanRequest frozen = lora;
  frozen.frozen_bf16 = true;
  EXPECT_EQ(plan_memory(frozen).peak(), fits[0].peak);
  EXPECT_GT(plan_memory(lora).peak(), 32 * gib);
  EXPECT_NEAR(static_cast<double>(plan_memory(lora).peak() - fits[0].peak), 4.0 * 6738415616, 0.02 * 4 * 6738415616);
  // Asked for already, it is no addition; a float32 run (cpu) or full fine-tuning is never offered it.
  EXPECT_FALSE(fitting_layouts(frozen, 1, 8, 32 * gib).at(0).frozen_bf16);
  PlanRequest cpu = lora;
  cpu.precision = Precision::cpu();
  for (const LayoutFit& f : fitting_layouts(cpu, 1, 8, 64 * gib)) EXPECT_FALSE(f.frozen_bf16);
  for (const std::int64_t capacity : {80 * gib, 40 * gib, 24 * gib}) {
    for (const LayoutFit& f : fitting_layouts(request(1, 1, 1, false), 16, 8, capacity)) EXPECT_FALSE(f.frozen_bf16);
  }
}

// GLM-4.5-Air's shapes (jobs/configs/models/glm-4.5-air.json): 128 experts of 1408, 8 a token, a shared
// expert, a dense first layer of 10944.
model::ModelConfig glm45_air() {
  return model::ModelConfig::from_json(
      R"({"model_type": "glm4_moe", "attention_bias": true, "head_dim": 128, "hidden_size": 4096,
          "partial_rotary_factor": 0.5, "intermediate_size": 10944, "max_position_embeddings": 131072,
          "moe_intermediate_size": 1408, "norm_topk_prob": true, "num_attention_heads": 96, "n_group": 1,
          "topk_group": 1, "n_routed_experts": 128, "n_shared_experts": 1, "routed_scaling_factor": 1.0,
          "num_experts_per_tok": 8, "first_k_dense_replace": 1, "num_hidden_layers": 46, "num_key_value_heads": 8,
          "rms_norm_eps": 1e-05, "rope_theta": 1000000, "tie_word_embeddings": false, "vocab_size": 151552,
          "eos_token_id": 151329})",
      "GLM-4.5-Air config");
}

// LoRA of a mixture's experts (GLM-4.5-Air, jobs/configs/glm-4.5-air-lora.ini's run on 16 GPUs of 50 GiB):
// at TP 8 x PP 2 the experts spread over the TP ranks (ep 8) fit where every rank's share of every
// expert does not -- offered before the base in bf16 and recomputation, and its peak is spin plan's at
// ep 8; never offered to full fine-tuning, nor where the request names an ep.
TEST(MemoryPlan, SuggestedLayoutsOfferTheExpertsSpreadForLoraOfAMixture) {
  const std::int64_t gib = std::int64_t{1} << 30;
  PlanRequest r;
  r.config = glm45_air();
  r.micro_batch = 2, r.seq = 1024, r.global_batch = 64, r.rollout_batch = 8;
  r.sequence_parallel = r.recompute_activations = true;
  r.logits_chunk_rows = 1024;
  r.lora.rank = 16;
  r.lora.dropout = 0.05;
  r.lora.targets =
      model::lora_targets_of_model(r.config, model::parse_lora_targets("all-linear", "test"), "all-linear", "test");
  const std::vector<LayoutFit> fits = fitting_layouts(r, 16, 8, 50 * gib);
  const auto at = std::find_if(fits.begin(), fits.end(), [](const LayoutFit& f) { return f.tp == 8 && f.pp == 2; });
  ASSERT_NE(at, fits.end());
  EXPECT_EQ(at->ep, 8);
  EXPECT_FALSE(at->frozen_bf16);
  EXPECT_EQ(at->recompute_num_layers, 0);
  PlanRequest spread = r;
  spread.tp = 8, spread.pp = 2, spread.ep = 8;
  spread.rollout_step_tokens = at->rollout_step_tokens;
  EXPECT_EQ(plan_memory(spread).peak(), at->peak);
  PlanRequest split = spread;
  split.ep = 1;
  EXPECT_GT(plan_memory(split).peak(), 50 * gib);
  for (const LayoutFit& f : fits) EXPECT_TRUE(f.ep == 1 || f.ep == f.tp) << f.tp;
  PlanRequest full = r;
  full.lora = {};
  for (const LayoutFit& f : fitting_layouts(full, 16, 8, 80 * gib)) EXPECT_EQ(f.ep, 1) << f.tp << " x " << f.pp;
  PlanRequest asked = r;
  asked.ep = 4;
  for (const LayoutFit& f : fitting_layouts(asked, 16, 8, 80 * gib)) EXPECT_EQ(f.ep, 4) << f.tp << " x " << f.pp;
}

// --pp-layers balanced: the plan's stages hold model::balanced_layers' split, and every layout
// fitting_layouts lists is balanced for its own pp -- its peak that plan's, and where it recomputes
// some of each stage's first layers, one fewer does not fit (the largest stage counted, which
// balancing makes larger than an even share).
TEST(MemoryPlan, BalancedLayersHoldForEveryLayoutListed) {
  const std::int64_t gib = std::int64_t{1} << 30;
  auto balanced = [](int tp, int pp, int dp) {
    PlanRequest r = request(tp, pp, dp, false);
    r.config.vocab_size = 128256;  // Llama 3's: a head of 2.6 layers' work at 2,048 tokens
    r.balanced_layers = true;
    return r;
  };
  const PlanRequest r4 = balanced(1, 4, 1);
  const std::vector<std::int64_t> split = stage_layers(r4);
  EXPECT_EQ(split, model::balanced_layers(r4.config, 4, 2048));
  EXPECT_EQ(split, (std::vector<std::int64_t>{9, 9, 8, 6}));
  const MemoryPlan plan = plan_memory(r4);
  for (std::size_t s = 0; s < split.size(); ++s) EXPECT_EQ(plan.stages[s].layers, split[s]);
  PlanRequest listed = r4;
  listed.pp_layers = {8, 8, 8, 8};  // an explicit list wins
  EXPECT_EQ(stage_layers(listed), listed.pp_layers);
  bool recomputed = false, pipelined = false;
  for (std::int64_t capacity = 48 * gib; capacity >= 16 * gib; capacity -= gib) {
    for (const LayoutFit& f : fitting_layouts(balanced(1, 1, 1), 16, 8, capacity)) {
      PlanRequest r = balanced(f.tp, f.pp, f.dp);
      r.distributed_optimizer = f.distributed_optimizer;
      r.sequence_parallel = f.sequence_parallel;
      r.rollout_step_tokens = f.rollout_step_tokens;
      r.recompute_activations = f.recompute_activations;
      r.recompute_num_layers = f.recompute_num_layers;
      EXPECT_EQ(plan_memory(r).peak(), f.peak) << f.tp << " x " << f.pp << " at " << capacity / gib << " GiB";
      pipelined = pipelined || f.pp > 1;
      if (f.recompute_activations) {
        const std::vector<std::int64_t> layers = stage_layers(r);
        const std::int64_t all = *std::max_element(layers.begin(), layers.end());
        recomputed = recomputed || (f.pp > 1 && f.recompute_num_layers > 0);
        r.recompute_num_layers = (f.recompute_num_layers > 0 ? f.recompute_num_layers : all) - 1;
        if (r.recompute_num_layers > 1) {
          EXPECT_GT(plan_memory(r).peak(), capacity) << f.tp << " x " << f.pp << ": fewer layers fit";
        }
      }
    }
  }
  EXPECT_TRUE(pipelined && recomputed);
}

TEST(MemoryPlan, ImpossibleRequestsAreRefusedByName) {
  PlanRequest r = request(3, 1, 1, false);
  EXPECT_NE(testing::error_of([&] { plan_memory(r); }).find("3"), std::string::npos);
  r = request(1, 1, 1, false);
  r.seq = 8192;
  EXPECT_NE(testing::error_of([&] { plan_memory(r); }).find("beyond the model's 4096"), std::string::npos);
  r = request(1, 1, 2, false);
  r.global_batch = 3;
  EXPECT_NE(testing::error_of([&] { plan_memory(r); }).find("not a multiple"), std::string::npos);
  r = request(1, 33, 1, false);
  EXPECT_FALSE(testing::error_of([&] { plan_memory(r); }).empty());
}

TEST(MemoryPlan, SizesParseWithBinaryAndDecimalUnits) {
  EXPECT_EQ(parse_bytes("80GiB"), 80LL << 30);
  EXPECT_EQ(parse_bytes("80G"), 80LL << 30);
  EXPECT_EQ(parse_bytes("40 GB"), 40'000'000'000LL);
  EXPECT_EQ(parse_bytes("1.5TiB"), 3LL << 39);
  EXPECT_EQ(parse_bytes("512MiB"), 512LL << 20);
  EXPECT_EQ(parse_bytes("1000"), 1000);
  EXPECT_NE(testing::error_of([] { parse_bytes("80 gigs"); }).find("\"80 gigs\" is not a size"), std::string::npos);
  EXPECT_FALSE(testing::error_of([] { parse_bytes("GiB"); }).empty());
  // Doubles that are no byte count: their conversion to an integer would be undefined.
  for (const char* text : {"inf", "nan", "1e30GiB"}) {
    EXPECT_NE(testing::error_of([&] { parse_bytes(text); }).find("is not a size"), std::string::npos) << text;
  }
  EXPECT_EQ(format_bytes(80LL << 30), "80.00 GiB");
  EXPECT_EQ(format_bytes(3LL << 20), "3.0 MiB");
}

}  // namespace
}  // namespace spin::train
