#include "model/transformer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/gradient_check.h"
#include "common/test_util.h"
#include "common/tiny_model.h"
#include "core/error.h"
#include "kernels/cpu/cpu_kernels.h"
#include "parallel/communicator.h"

namespace spin::model {
namespace {

struct TinyModel {
  ModelConfig config;
  TpDims dims;
  parallel::SelfCommunicator tp;
  kernels::CpuKernels cpu;
  ModelWeights weights;
  Transformer transformer;

  explicit TinyModel(const testing::TinyShape& shape = {}) : TinyModel(testing::tiny_config(shape)) {}
  explicit TinyModel(const ModelConfig& c)
      : config(c),
        dims(tp_dims(config, 0, 1)),
        weights(config, dims),
        transformer(config, dims, tp, cpu) {
    testing::init_tiny_weights(weights, 7, 0.3f, config.norm_weight_offset);
  }
};

std::vector<Sequence> three_sequences() {
  return {{testing::random_ids(4, 37, 1), 1},
          {testing::random_ids(7, 37, 2), 3},
          {testing::random_ids(2, 37, 3), 1}};
}

// OLMo 1.7's clip_qkv for the finite differences: common/gradient_check.h's limit for the tiny
// model's products on three_sequences() (1.87, clamping a tenth of them). Passing the gradient
// where a value was clamped fails the check.
float clip_in_a_gap(testing::TinyShape shape) {
  shape.clip_qkv = 1e9f;  // the products' values kept, nothing clamped
  TinyModel m(shape);
  Activations acts;
  m.transformer.forward(m.weights, TokenBatch::pack(three_sequences()), acts, true);
  return testing::clip_in_a_gap(acts);
}

// Whole-model gradients against central finite differences of the float32 forward, for every
// family's parts (tolerances: common/gradient_check.h).
TEST(Transformer, GradientsMatchFiniteDifferences) {
  for (const char* variant :
       {"untied", "tied", "window", "qkv bias", "qk norm", "gemma", "gemma2", "gemma3", "phi3", "partial rotary",
        "nope", "granite", "olmo", "olmo2", "stablelm", "parallel residual", "cohere", "cohere2", "gpt_neox",
        "gpt_neox sequential", "phi", "mixtral", "qwen3_moe", "olmoe", "qwen2_moe", "cohere qk norms",
        "stablelm qk norms", "biases", "granitemoe", "glm4", "exaone4", "glm4_moe", "deepseek_v3", "deepseek_v2"}) {
    testing::TinyShape shape;
    const bool gemma = std::string(variant).starts_with("gemma");
    shape.tie = variant == std::string("tied") || gemma || variant == std::string("granite");  // as published
    shape.family = variant == std::string("window")              ? testing::TinyFamily::Mistral
                   : variant == std::string("qkv bias")          ? testing::TinyFamily::Qwen2
                   : variant == std::string("qk norm")           ? testing::TinyFamily::Qwen3
                   : variant == std::string("gemma")             ? testing::TinyFamily::Gemma
                   : variant == std::string("gemma2")            ? testing::TinyFamily::Gemma2
                   : variant == std::string("gemma3")            ? testing::TinyFamily::Gemma3
                   : variant == std::string("phi3")              ? testing::TinyFamily::Phi3
                   : variant == std::string("partial rotary")    ? testing::TinyFamily::Phi4Mini
                   : variant == std::string("nope")              ? testing::TinyFamily::SmolLM3
                   : variant == std::string("granite")           ? testing::TinyFamily::Granite
                   : variant == std::string("olmo")              ? testing::TinyFamily::Olmo
                   : variant == std::string("olmo2")             ? testing::TinyFamily::Olmo2
                   : variant == std::string("stablelm")          ? testing::TinyFamily::StableLm
                   : variant == std::string("parallel residual") ? testing::TinyFamily::StableLmParallel
                   : variant == std::string("cohere")            ? testing::TinyFamily::Cohere
                   : variant == std::string("cohere2")           ? testing::TinyFamily::Cohere2
                   : variant == std::string("gpt_neox")          ? testing::TinyFamily::GptNeox
                   : variant == std::string("gpt_neox sequential") ? testing::TinyFamily::GptNeoxSequential
                   : variant == std::string("phi")               ? testing::TinyFamily::Phi
                   : variant == std::string("mixtral")           ? testing::TinyFamily::Mixtral
                   : variant == std::string("qwen3_moe")         ? testing::TinyFamily::Qwen3Moe
                   : variant == std::string("olmoe")             ? testing::TinyFamily::Olmoe
                   : variant == std::string("qwen2_moe")         ? testing::TinyFamily::Qwen2Moe
                   : variant == std::string("cohere qk norms")   ? testing::TinyFamily::CohereQkNorm
                   : variant == std::string("stablelm qk norms") ? testing::TinyFamily::StableLmQkNorm
                   : variant == std::string("biases")            ? testing::TinyFamily::LlamaBiases
                   : variant == std::string("granitemoe")        ? testing::TinyFamily::GraniteMoe
                   : variant == std::string("glm4")              ? testing::TinyFamily::Glm4
                   : variant == std::string("exaone4")           ? testing::TinyFamily::Exaone4
                   : variant == std::string("glm4_moe")          ? testing::TinyFamily::Glm4Moe
                   : variant == std::string("deepseek_v3")       ? testing::TinyFamily::DeepseekV3
                   : variant == std::string("deepseek_v2")       ? testing::TinyFamily::DeepseekV2
                                                                 : testing::TinyFamily::Llama;
    if (shape.family == testing::TinyFamily::Olmo) shape.clip_qkv = clip_in_a_gap(shape);
    TinyModel m(shape);
    const TokenBatch batch = TokenBatch::pack(three_sequences());
    const std::vector<float> c = {0.7f, -1.3f, 0.4f};  // loss = sum_s c_s logprob_s
    Activations acts;
    m.transformer.forward(m.weights, batch, acts, true);
    ModelWeights grads(m.config, m.dims);
    m.transformer.backward(m.weights, acts, c, grads);

    const auto loss = [&] {
      const ForwardResult r = m.transformer.forward(m.weights, batch);
      return testing::weighted_sum(r.sequence_logprobs, c);
    };
    testing::check_model_gradients(m.weights, grads, loss, variant);
  }
}

// The router's losses trained (ModelConfig::router_aux_loss_coef, as where output_router_logits,
// and router_z_loss_coef): the whole model's gradients of sum_s c_s logprob_s + the coefficients
// times the means over the layers of each layer's balance loss and z-loss (backward's
// router_loss_weight 1) against finite differences, for Mixtral (renormalised weights) and
// Qwen2-MoE (a shared expert beside), each loss alone and both; their values are
// take_router_losses()'s, counted in training forwards only.
TEST(Transformer, RouterLossGradientsMatchFiniteDifferences) {
  for (const testing::TinyFamily family : {testing::TinyFamily::Mixtral, testing::TinyFamily::Qwen2Moe}) {
    for (const auto& [aux, z] : {std::pair{0.5f, 0.0f}, std::pair{0.0f, 0.3f}, std::pair{0.5f, 0.3f}}) {
      SCOPED_TRACE(cat(testing::tiny_family_name(family), " aux ", aux, " z ", z));
      testing::TinyShape shape;
      shape.family = family;
      shape.router_aux_loss_coef = aux;
      TinyModel m(shape);
      m.config.router_z_loss_coef = z;
      const TokenBatch batch = TokenBatch::pack(three_sequences());
      const std::vector<float> c = {0.7f, -1.3f, 0.4f};
      Activations acts;
      m.transformer.forward(m.weights, batch, acts, true);
      const RouterLosses losses = m.transformer.take_router_losses();
      // Every layer's balance loss is between 0 and experts x k (k with a uniform router); its
      // z-loss positive.
      EXPECT_GT(losses.balance, 0.0);
      EXPECT_LT(losses.balance,
                static_cast<double>(m.config.num_layers * m.config.num_experts * m.config.experts_per_token));
      EXPECT_GT(losses.z, 0.0);
      ModelWeights grads(m.config, m.dims);
      m.transformer.backward(m.weights, acts, c, grads, {}, 1.0f);
      EXPECT_EQ(m.transformer.take_router_losses().balance, 0.0) << "taken, and the backward adds nothing";
      const auto loss = [&] {
        Activations a;
        const ForwardResult r = m.transformer.forward(m.weights, batch, a, true);
        const RouterLosses l = m.transformer.take_router_losses();
        return testing::weighted_sum(r.sequence_logprobs, c) +
               (aux * l.balance + z * l.z) / static_cast<double>(m.config.num_layers);
      };
      testing::check_model_gradients(m.weights, grads, loss, testing::tiny_family_name(family));
    }
  }
}

// A mixture of experts' load (Transformer::take_expert_counts): each layer's experts take every
// row of a training forward k times -- with recomputation too, the backward's repeat not counted
// --, a scoring forward counts nothing, and taking the counts resets them. A dense model has none.
TEST(Transformer, ExpertCountsCoverEveryTrainingRowKTimes) {
  testing::TinyShape shape;
  shape.family = testing::TinyFamily::Mixtral;
  TinyModel m(shape);
  const TokenBatch batch = TokenBatch::pack(three_sequences());
  const std::int64_t experts = m.config.num_experts, layers = m.config.num_layers;
  for (const bool recompute : {false, true}) {
    m.transformer.set_recompute_activations(recompute);
    m.transformer.forward(m.weights, batch);  // scoring: not counted
    Activations acts;
    m.transformer.forward(m.weights, batch, acts, true);
    ModelWeights grads(m.config, m.dims);
    m.transformer.backward(m.weights, acts, std::vector<float>{1.0f, 1.0f, 1.0f}, grads);
    const std::vector<std::int64_t> counts = m.transformer.take_expert_counts();
    ASSERT_EQ(static_cast<std::int64_t>(counts.size()), layers * experts);
    for (std::int64_t l = 0; l < layers; ++l) {
      std::int64_t rows = 0, used = 0;
      for (std::int64_t e = 0; e < experts; ++e) {
        rows += counts[static_cast<std::size_t>(l * experts + e)];
        used += counts[static_cast<std::size_t>(l * experts + e)] > 0;
      }
      EXPECT_EQ(rows, batch.rows() * m.config.experts_per_token) << l;
      EXPECT_GT(used, m.config.experts_per_token) << "layer " << l << ": the routing depends on the rows";
    }
    for (const std::int64_t c : m.transformer.take_expert_counts()) EXPECT_EQ(c, 0);
  }
  TinyModel dense;
  Activations acts;
  dense.transformer.forward(dense.weights, batch, acts, true);
  EXPECT_TRUE(dense.transformer.take_expert_counts().empty());
}

// Packing is padding-free: a sequence scores the same alone or next to others.
TEST(Transformer, SequenceResultsDoNotDependOnTheBatch) {
  TinyModel m;
  const auto seqs = three_sequences();
  const ForwardResult together = m.transformer.forward(m.weights, TokenBatch::pack(seqs));
  const TokenBatch packed = TokenBatch::pack(seqs);
  for (std::size_t s = 0; s < seqs.size(); ++s) {
    const ForwardResult alone = m.transformer.forward(m.weights, TokenBatch::pack({seqs[s]}));
    const auto first = static_cast<std::size_t>(packed.cu_seqlens[s]);
    const std::vector<float> mine(together.token_logprobs.begin() + static_cast<std::ptrdiff_t>(first),
                                  together.token_logprobs.begin() +
                                      static_cast<std::ptrdiff_t>(first + seqs[s].tokens.size()));
    testing::expect_close(mine, alone.token_logprobs, 1e-5, 1e-6, "token logprobs");
    EXPECT_NEAR(together.sequence_logprobs[s], alone.sequence_logprobs[0], 1e-4);
  }
}

TEST(Transformer, SequenceSumCoversExactlyTheMaskedTokens) {
  TinyModel m;
  const auto seqs = three_sequences();
  const ForwardResult r = m.transformer.forward(m.weights, TokenBatch::pack(seqs));
  std::size_t row = 0;
  for (std::size_t s = 0; s < seqs.size(); ++s) {
    const std::size_t len = seqs[s].tokens.size();
    double want = 0.0;
    // token_logprobs[row + i] predicts token i + 1; summed when i + 1 >= mask_from.
    for (std::size_t i = 0; i + 1 < len; ++i) {
      EXPECT_LT(r.token_logprobs[row + i], 0.0f);
      if (static_cast<std::int64_t>(i + 1) >= seqs[s].mask_from) want += r.token_logprobs[row + i];
    }
    EXPECT_EQ(r.token_logprobs[row + len - 1], 0.0f) << "last token predicts nothing";
    EXPECT_NEAR(r.sequence_logprobs[s], want, 1e-5);
    row += len;
  }
}

TEST(Transformer, KeepingActivationsDoesNotChangeResults) {
  TinyModel m;
  const TokenBatch batch = TokenBatch::pack(three_sequences());
  Activations acts;
  const ForwardResult kept = m.transformer.forward(m.weights, batch, acts, true);
  const ForwardResult plain = m.transformer.forward(m.weights, batch);
  EXPECT_EQ(kept.token_logprobs, plain.token_logprobs);
}

// Activation recomputation: keeping only each layer's input and running its forward again in
// the backward gives the same log-probabilities and gradients, bitwise, in float32 and with
// bf16 products -- for a fraction of the memory; recomputing only the first 1 or 2 of 3 layers
// (the others keeping everything) the same, for memory in between: the recomputed layers share
// one set of buffers, so 2 save a set (and 1, whose set is its own, nothing).
TEST(Transformer, RecomputedActivationsGiveTheSameGradientsBitwise) {
  std::map<std::pair<bool, std::int64_t>, std::size_t> bytes;  // (bf16, layers recomputed) -> activations
  for (const auto& [mixed, layers] : {std::pair{false, 0}, std::pair{true, 0}, std::pair{false, 1},
                                      std::pair{false, 2}, std::pair{true, 2}, std::pair{false, 5}}) {
    SCOPED_TRACE(cat(mixed ? "bf16 products" : "float32", ", recomputed layers ", layers));
    testing::TinyShape shape;
    shape.layers = 3;
    TinyModel kept(shape), again(shape);
    again.transformer.set_recompute_activations(true, layers);
    EXPECT_EQ(again.transformer.recomputed_layers(), layers == 0 || layers > 3 ? 3 : layers);
    if (mixed) {
      kept.weights.enable_bf16(kept.cpu);
      again.weights.enable_bf16(again.cpu);
    }
    const TokenBatch batch = TokenBatch::pack(three_sequences());
    const std::vector<float> c = {1.0f, 2.0f, -1.0f};
    Activations a_kept, a_again;
    ModelWeights g_kept(kept.config, kept.dims), g_again(again.config, again.dims);
    for (int round = 0; round < 2; ++round) {  // buffers reused, gradients accumulated
      EXPECT_EQ(kept.transformer.forward(kept.weights, batch, a_kept, true).token_logprobs,
                again.transformer.forward(again.weights, batch, a_again, true).token_logprobs);
      kept.transformer.backward(kept.weights, a_kept, c, g_kept);
      again.transformer.backward(again.weights, a_again, c, g_again);
    }
    for (std::int64_t i = 0; i < g_kept.flat().numel(); ++i) {
      ASSERT_EQ(g_kept.flat().f32()[i], g_again.flat().f32()[i]) << "element " << i;
    }
    EXPECT_EQ(a_again.layers.size(), static_cast<std::size_t>(4 - again.transformer.recomputed_layers()));
    bytes[std::pair{mixed, std::int64_t{0}}] = a_kept.bytes();
    bytes[std::pair{mixed, again.transformer.recomputed_layers()}] = a_again.bytes();
  }
  const auto at = [&](bool mixed, std::int64_t layers) { return bytes.at(std::pair{mixed, layers}); };
  for (const bool mixed : {false, true}) {
    EXPECT_LT(at(mixed, 3), at(mixed, 0) * 3 / 4) << mixed;
    EXPECT_LT(at(mixed, 3), at(mixed, 2)) << mixed;
    EXPECT_LT(at(mixed, 2), at(mixed, 0)) << mixed;
  }
  EXPECT_GE(at(false, 1), at(false, 0));  // one layer's own set, and its input besides
}

// Buffers are reused across calls (and grown when a batch is larger): results must not depend
// on what ran before, and gradients accumulate over backward calls.
TEST(Transformer, ReusedBuffersGiveFreshResultsAndGradientsAccumulate) {
  TinyModel m;
  const TokenBatch big = TokenBatch::pack(three_sequences());
  const TokenBatch small = TokenBatch::pack({three_sequences()[2]});
  const ForwardResult fresh_big = m.transformer.forward(m.weights, big);
  const ForwardResult fresh_small = m.transformer.forward(m.weights, small);
  Activations acts;
  for (int round = 0; round < 2; ++round) {
    EXPECT_EQ(m.transformer.forward(m.weights, small, acts, true).token_logprobs,
              fresh_small.token_logprobs);
    EXPECT_EQ(m.transformer.forward(m.weights, big, acts, true).token_logprobs,
              fresh_big.token_logprobs);
  }
  const std::vector<float> c = {1.0f, 2.0f, -1.0f};
  ModelWeights once(m.config, m.dims), twice(m.config, m.dims);
  m.transformer.backward(m.weights, acts, c, once);
  for (int i = 0; i < 2; ++i) {
    m.transformer.forward(m.weights, big, acts, true);
    m.transformer.backward(m.weights, acts, c, twice);
  }
  for (std::int64_t i = 0; i < once.flat().numel(); ++i) {
    ASSERT_NEAR(twice.flat().f32()[i], 2.0f * once.flat().f32()[i],
                1e-6f + 1e-5f * std::fabs(once.flat().f32()[i]));
  }
  Activations scoring;
  m.transformer.forward(m.weights, big, scoring, false);
  EXPECT_THROW(m.transformer.backward(m.weights, scoring, c, once), Error);
}

// LongRoPE (the tiny Phi-3: L = 32 of 64 positions): a sequence longer than L runs on the long
// factors at every position, a shorter one on the short factors, each whatever it is packed with
// -- the log-probabilities and the gradients bitwise those of twins that never switch, one with
// the long factors as its short ones, one with the short factors, both with the same attention
// factor.
TEST(Transformer, LongRopeRunsSequencesPastItsContextOnTheLongFactors) {
  testing::TinyShape shape;
  shape.family = testing::TinyFamily::Phi3;
  TinyModel m(shape);
  ASSERT_EQ(m.config.long_rope_context(), 32);
  const auto twin = [&](bool long_factors) {
    ModelConfig c = m.config;
    if (long_factors) c.rope_scaling->short_factor = c.rope_scaling->long_factor;
    c.rope_scaling->original_max_position_embeddings = c.max_position_embeddings;
    return c;
  };
  TinyModel long_twin(twin(true)), short_twin(twin(false));
  const Sequence long_seq{testing::random_ids(40, 37, 8), 5}, short_seq{testing::random_ids(32, 37, 9), 3};
  for (const Sequence& seq : {long_seq, short_seq}) {
    const bool is_long = seq.tokens.size() > 32;
    SCOPED_TRACE(is_long ? "40 tokens" : "32 tokens");
    TinyModel& same = is_long ? long_twin : short_twin;
    const TokenBatch batch = TokenBatch::pack({seq});
    Activations acts, twin_acts;
    const ForwardResult got = m.transformer.forward(m.weights, batch, acts, true);
    EXPECT_EQ(got.token_logprobs, same.transformer.forward(same.weights, batch, twin_acts, true).token_logprobs);
    TinyModel& other = is_long ? short_twin : long_twin;
    EXPECT_GT(testing::max_abs_diff(got.token_logprobs, other.transformer.forward(other.weights, batch).token_logprobs),
              1e-3)
        << "the factors make a difference";
    ModelWeights grads(m.config, m.dims), twin_grads(m.config, m.dims);
    m.transformer.backward(m.weights, acts, std::vector<float>{1.0f}, grads);
    same.transformer.backward(same.weights, twin_acts, std::vector<float>{1.0f}, twin_grads);
    for (std::int64_t i = 0; i < grads.flat().numel(); ++i) {
      ASSERT_EQ(grads.flat().f32()[i], twin_grads.flat().f32()[i]) << "element " << i;
    }
  }
  // Packed together, each as alone.
  const std::vector<Sequence> seqs = {short_seq, long_seq, three_sequences()[1]};
  const TokenBatch packed = TokenBatch::pack(seqs);
  const ForwardResult together = m.transformer.forward(m.weights, packed);
  for (std::size_t s = 0; s < seqs.size(); ++s) {
    const ForwardResult alone = m.transformer.forward(m.weights, TokenBatch::pack({seqs[s]}));
    const auto first = together.token_logprobs.begin() + static_cast<std::ptrdiff_t>(packed.cu_seqlens[s]);
    testing::expect_close(std::vector<float>(first, first + static_cast<std::ptrdiff_t>(seqs[s].tokens.size())),
                          alone.token_logprobs, 1e-5, 1e-6, "token logprobs");
  }
}

TEST(Transformer, RefusesTokensOutsideTheVocabularyAndOverlongSequences) {
  TinyModel m;
  EXPECT_THROW(m.transformer.forward(m.weights, TokenBatch::pack({{{1, 2, 37}, 1}})), Error);
  const std::vector<std::int32_t> long_seq(65, 1);
  EXPECT_THROW(m.transformer.forward(m.weights, TokenBatch::pack({{long_seq, 1}})), Error);
}

}  // namespace
}  // namespace spin::model
