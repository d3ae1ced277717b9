#include "model/config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/rope.h"
#include "model/weights.h"
#include "unit/model/config_test_util.h"

namespace spin::model {
namespace {

using config_testing::error_of;
using config_testing::kLlama;
using config_testing::replaced;
using config_testing::with;
using config_testing::without;

TEST(ModelConfig, ReadsLlama2AndAppliesDefaults) {
  const ModelConfig c = ModelConfig::from_json(kLlama, "cfg.json");
  EXPECT_EQ(c.vocab_size, 32000);
  EXPECT_EQ(c.num_kv_heads, 32);  // defaults to num_attention_heads
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_FLOAT_EQ(c.rope_theta, 10000.0f);
  EXPECT_EQ(c.eos_token_ids, std::vector<std::int64_t>{2});
  EXPECT_EQ(c.num_parameters(), 6738415616);  // Llama-2-7B
}

TEST(ModelConfig, ReadsMistralGqaSlidingWindowAndEosList) {
  const ModelConfig c = ModelConfig::from_json(with("num_key_value_heads", "8"), "cfg.json");
  EXPECT_EQ(c.num_kv_heads, 8);
  // Mistral's window: every layer's, sequences up to max_position_embeddings all the same.
  const ModelConfig m = ModelConfig::from_json(with("sliding_window", "1024"), "cfg.json");
  EXPECT_EQ(m.max_sequence_length(), m.max_position_embeddings);
  ASSERT_EQ(m.windowed_layers.size(), static_cast<std::size_t>(m.num_layers));
  for (std::int64_t l = 0; l < m.num_layers; ++l) EXPECT_EQ(m.attention_scores(l).window, 1024);
  EXPECT_EQ(m.attention_scores(0).first_key(1023), 0);
  EXPECT_EQ(m.attention_scores(0).first_key(1024), 1);  // keys 1..1024: 1024 of them
  EXPECT_EQ(ModelConfig::from_json(kLlama, "cfg.json").attention_scores(0).window, 0);
  const ModelConfig e = ModelConfig::from_json(with("eos_token_id", "[2, 7]"), "cfg.json");
  EXPECT_EQ(e.eos_token_ids, (std::vector<std::int64_t>{2, 7}));
}

TEST(ModelConfig, MissingOrBadKeysNameTheKeyAndTheFile) {
  for (const char* key : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                          "num_attention_heads", "max_position_embeddings", "rms_norm_eps"}) {
    const std::string e = error_of(without(key));
    EXPECT_NE(e.find("cfg.json"), std::string::npos) << e;
    EXPECT_NE(e.find(key), std::string::npos) << e;
  }
  EXPECT_NE(error_of(with("hidden_size", "-4")).find("positive"), std::string::npos);
  EXPECT_NE(error_of(with("num_key_value_heads", "5")).find("not divisible"), std::string::npos);
  EXPECT_NE(error_of("{not json").find("not valid JSON"), std::string::npos);
}

// Llama 3.1's rope_scaling, and the older linear one; the other rope types are refused.
TEST(ModelConfig, ReadsLinearAndLlama3RopeScaling) {
  const ModelConfig l3 = ModelConfig::from_json(
      with("rope_scaling", R"({"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                               "original_max_position_embeddings": 8192, "rope_type": "llama3"})"),
      "config.json");
  ASSERT_TRUE(l3.rope_scaling.has_value());
  EXPECT_EQ(l3.rope_scaling->type, RopeScaling::Type::Llama3);
  EXPECT_EQ(l3.rope_scaling->factor, 8.0f);
  EXPECT_EQ(l3.rope_scaling->high_freq_factor, 4.0f);
  EXPECT_EQ(l3.rope_scaling->original_max_position_embeddings, 8192);
  const ModelConfig lin = ModelConfig::from_json(with("rope_scaling", R"({"type": "linear", "factor": 2.0})"), "c");
  EXPECT_EQ(lin.rope_scaling->type, RopeScaling::Type::Linear);
  EXPECT_EQ(lin.rope_scaling->factor, 2.0f);
  EXPECT_FALSE(ModelConfig::from_json(kLlama, "c").rope_scaling.has_value());
  EXPECT_NE(error_of(with("rope_scaling", R"({"rope_type": "llama3", "factor": 8.0})")).find("lacks \"low_freq_factor\""),
            std::string::npos);
}

// YaRN as Qwen2.5 / Qwen3 document it, and as transformers fills it in: the original context from
// rope_scaling, else max_position_embeddings; the attention factor 0.1 ln factor + 1 (the
// constants: tests/data/yarn_oracle.py), the mscale ratio where both are given, or given itself;
// the betas' defaults 32 and 1 (also for a 0, as Python's `or` reads it).
TEST(ModelConfig, ReadsYarnRopeScaling) {
  const ModelConfig q = ModelConfig::from_json(
      with("rope_scaling", R"({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768})"), "c");
  ASSERT_TRUE(q.rope_scaling.has_value());
  EXPECT_EQ(q.rope_scaling->type, RopeScaling::Type::Yarn);
  EXPECT_EQ(q.rope_scaling->factor, 4.0f);
  EXPECT_EQ(q.rope_scaling->original_max_position_embeddings, 32768);
  EXPECT_EQ(q.rope_scaling->attention_factor, static_cast<float>(0x1.237d37fe5d298p+0));
  EXPECT_EQ(q.rope_scaling->beta_fast, 32.0);
  EXPECT_EQ(q.rope_scaling->beta_slow, 1.0);
  EXPECT_TRUE(q.rope_scaling->truncate);
  EXPECT_EQ(q.max_sequence_length(), q.max_position_embeddings);  // YaRN serves every position
  const ModelConfig d = ModelConfig::from_json(
      with("rope_scaling", R"({"type": "yarn", "factor": 40, "mscale": 1.0, "mscale_all_dim": 0.5, "beta_fast": 0,
                               "beta_slow": 2, "truncate": false})"), "c");
  EXPECT_EQ(d.rope_scaling->original_max_position_embeddings, d.max_position_embeddings);
  EXPECT_EQ(d.rope_scaling->attention_factor, static_cast<float>(0x1.27dd657729358p+0));
  EXPECT_EQ(d.rope_scaling->beta_fast, 32.0);
  EXPECT_EQ(d.rope_scaling->beta_slow, 2.0);
  EXPECT_FALSE(d.rope_scaling->truncate);
  const ModelConfig given = ModelConfig::from_json(
      with("rope_scaling", R"({"rope_type": "yarn", "factor": 4.0, "attention_factor": 1.5, "mscale": 1.0})"), "c");
  EXPECT_EQ(given.rope_scaling->attention_factor, 1.5f);
  const ModelConfig one = ModelConfig::from_json(with("rope_scaling", R"({"rope_type": "yarn", "factor": 1.0})"), "c");
  EXPECT_EQ(one.rope_scaling->attention_factor, 1.0f);
  EXPECT_NE(error_of(with("rope_scaling", R"({"rope_type": "yarn"})")).find("lacks \"factor\""), std::string::npos);
  EXPECT_NE(error_of(with("rope_scaling", R"({"rope_type": "yarn", "factor": 4, "beta_fast": -1})")).find("beta_fast"),
            std::string::npos);
  EXPECT_NE(error_of(with("rope_scaling", R"({"rope_type": "yarn", "factor": 4, "truncate": 1})")).find("truncate"),
            std::string::npos);
}

// Dynamic NTK: transformers raises the RoPE base only for a sequence longer than
// max_position_embeddings (or rope_scaling's original_max_position_embeddings), so up to there the
// tables are plain RoPE's, bitwise, and the model stops there.
TEST(ModelConfig, ReadsDynamicNtkAsRopeUpToItsContext) {
  const ModelConfig c = ModelConfig::from_json(with("rope_scaling", R"({"type": "dynamic", "factor": 2.0})"), "c");
  ASSERT_TRUE(c.rope_scaling.has_value());
  EXPECT_EQ(c.rope_scaling->type, RopeScaling::Type::Dynamic);
  EXPECT_EQ(c.max_sequence_length(), c.max_position_embeddings);
  EXPECT_EQ(rope_inv_freq(c.rotary_dim, c.rope_theta, c.rope_scaling), rope_inv_freq(c.rotary_dim, c.rope_theta, {}));
  const ModelConfig shorter = ModelConfig::from_json(
      with("rope_scaling", R"({"rope_type": "dynamic", "factor": 4.0, "original_max_position_embeddings": 1024})"), "c");
  EXPECT_EQ(shorter.max_sequence_length(), 1024);
  EXPECT_NE(error_of(with("rope_scaling", R"({"rope_type": "dynamic"})")).find("lacks \"factor\""), std::string::npos);
}

TEST(ModelConfig, RefusesWhatItDoesNotImplement) {
  EXPECT_NE(error_of(with("rope_scaling", R"({"type": "ntk-by-parts", "factor": 2.0})")).find("rope_scaling"),
            std::string::npos);
  EXPECT_NE(error_of(with("rope_scaling", R"({"rope_type": "su", "factor": 4.0})")).find("linear, llama3, yarn, longrope and dynamic"),
            std::string::npos);
  EXPECT_NE(error_of(with("partial_rotary_factor", "0.75")).find("partial_rotary_factor 0.75 is not supported for model_type llama"),
            std::string::npos);
  EXPECT_EQ(ModelConfig::from_json(with("partial_rotary_factor", "1.0"), "c").rotary_dim, 128);
  // mlp_bias: biases on gate_proj, up_proj and down_proj (LlamaMLP's), 2 x intermediate + hidden more a
  // layer; the families whose MLPs have none (Mistral's) refuse it.
  const ModelConfig mlp_biased = ModelConfig::from_json(with("mlp_bias", "true"), "c");
  EXPECT_TRUE(mlp_biased.mlp_bias && mlp_biased.gated_mlp);
  EXPECT_EQ(mlp_biased.num_parameters() - ModelConfig::from_json(config_testing::kLlama, "c").num_parameters(),
            mlp_biased.num_layers * (2 * mlp_biased.intermediate_size + mlp_biased.hidden_size));
  EXPECT_NE(error_of(replaced(with("mlp_bias", "true"), {{"\"llama\"", "\"mistral\""}}))
                .find("\"mlp_bias\": true is not supported for model_type mistral"),
            std::string::npos);
  // attention_bias: biases on q, k, v and o_proj (LlamaAttention's), [heads x head_dim] and [hidden]
  // more a layer; Qwen2's key-less q, k, v biases refuse it.
  const ModelConfig plain = ModelConfig::from_json(config_testing::kLlama, "c");
  const ModelConfig biased = ModelConfig::from_json(with("attention_bias", "true"), "c");
  EXPECT_TRUE(biased.qkv_bias && biased.o_bias);
  EXPECT_FALSE(plain.qkv_bias || plain.o_bias || biased.mlp_bias);
  EXPECT_EQ(biased.num_parameters() - plain.num_parameters(),
            plain.num_layers * (plain.head_dim * (plain.num_heads + 2 * plain.num_kv_heads) + plain.hidden_size));
  EXPECT_NE(error_of(replaced(with("attention_bias", "true"), {{"\"llama\"", "\"qwen2\""}})).find("attention_bias"),
            std::string::npos);
  EXPECT_NE(error_of(with("hidden_act", "\"gelu\"")).find("hidden_act"), std::string::npos);
  // Gemma 3's multimodal form needs its text_config; other model types are refused by name.
  EXPECT_NE(error_of(with("model_type", "\"gemma3\"")).find("text_config"), std::string::npos);
  EXPECT_NE(error_of(with("model_type", "\"gemma3n\"")).find("gemma3n"), std::string::npos);
}

// Qwen2.5-0.5B-Instruct's config.json as published: biases on q/k/v, tied embeddings, and a
// sliding_window that does not apply (use_sliding_window false).
TEST(ModelConfig, ReadsQwen2WithQkvBiasesAndItsSlidingWindowSwitch) {
  const std::string qwen = R"({
    "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
    "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 21,
    "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true,
    "torch_dtype": "bfloat16", "use_cache": true, "use_sliding_window": false, "vocab_size": 151936})";
  const ModelConfig c = ModelConfig::from_json(qwen, "cfg.json");
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_FALSE(c.sliding_window.has_value());
  EXPECT_EQ(c.max_sequence_length(), 32768);
  EXPECT_EQ(c.num_parameters(), 494032768);  // Qwen2.5-0.5B's published count
  EXPECT_FALSE(ModelConfig::from_json(kLlama, "cfg.json").qkv_bias);
  for (std::int64_t l = 0; l < c.num_layers; ++l) EXPECT_EQ(c.attention_scores(l).window, 0);
  // Switched on: the layers from max_window_layers (21) on, as transformers' Qwen2 applies it.
  std::string windowed = qwen;
  windowed.replace(windowed.find("\"use_sliding_window\": false"), 27, "\"use_sliding_window\": true ");
  windowed.replace(windowed.find("32768, \"tie"), 5, "4096 ");
  const ModelConfig w = ModelConfig::from_json(windowed, "cfg.json");
  EXPECT_EQ(w.max_sequence_length(), 32768);
  for (std::int64_t l = 0; l < w.num_layers; ++l) EXPECT_EQ(w.attention_scores(l).window, l >= 21 ? 4096 : 0) << l;
  // Newer transformers write the layers' types out; they decide.
  std::string types = "[";
  for (int l = 0; l < 24; ++l) types += std::string(l ? ", " : "") + (l % 3 == 1 ? "\"sliding_attention\"" : "\"full_attention\"");
  std::string listed = windowed;
  listed.insert(listed.find("\"max_position"), "\"layer_types\": " + types + "], ");
  const ModelConfig t = ModelConfig::from_json(listed, "cfg.json");
  for (std::int64_t l = 0; l < t.num_layers; ++l) EXPECT_EQ(t.attention_scores(l).window, l % 3 == 1 ? 4096 : 0) << l;
  std::string short_list = windowed;
  short_list.insert(short_list.find("\"max_position"), "\"layer_types\": [\"full_attention\"], ");
  EXPECT_THROW(ModelConfig::from_json(short_list, "cfg.json"), Error);
  std::string chunked = listed;
  chunked.replace(chunked.find("\"sliding_attention\""), 19, "\"chunked_attention\"");
  try {
    ModelConfig::from_json(chunked, "cfg.json");
    ADD_FAILURE() << "chunked_attention accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("chunked_attention"), std::string::npos) << e.what();
  }
}

// A LongRoPE factor list of n entries, 1, 1.05, 1.1, ... (made up) as JSON.
std::string longrope_factors(int n) {
  std::string factors = "[";
  for (int i = 0; i < n; ++i) factors += (i ? ", " : "") + std::to_string(1.0 + 0.05 * i);
  return factors + "]";
}

// Phi-3-mini-128k's shape (its factors here made up; the published lists have 48 entries too):
// Llama with q/k/v and gate/up fused in its files, LongRoPE ("su", as the first release wrote
// it) with an attention factor of sqrt(1 + ln 32 / ln 4096), every one of its 131072 positions --
// sequences past the original 4096 on the long factors --, and a window in every layer.
TEST(ModelConfig, ReadsPhi3WithLongRope) {
  const std::string factors = longrope_factors(48);
  const std::string phi3 = R"({
    "architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "vocab_size": 32064, "hidden_size": 3072,
    "intermediate_size": 8192, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
    "hidden_act": "silu", "max_position_embeddings": 131072, "original_max_position_embeddings": 4096,
    "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 262144, "tie_word_embeddings": false,
    "bos_token_id": 1, "eos_token_id": 32000, "pad_token_id": 32000,
    "rope_scaling": {"type": "su", "short_factor": )" + factors + R"(, "long_factor": )" + factors + "}}";
  const ModelConfig c = ModelConfig::from_json(phi3, "config.json");
  EXPECT_TRUE(c.fused_projections);
  EXPECT_EQ(c.head_dim, 96);
  ASSERT_TRUE(c.rope_scaling.has_value());
  EXPECT_EQ(c.rope_scaling->type, RopeScaling::Type::LongRope);
  EXPECT_EQ(c.rope_scaling->short_factor.size(), 48u);
  EXPECT_FLOAT_EQ(c.rope_scaling->short_factor[2], 1.1f);
  EXPECT_EQ(c.rope_scaling->original_max_position_embeddings, 4096);
  EXPECT_FLOAT_EQ(c.rope_scaling->attention_factor, 1.1902381f);  // sqrt(1 + ln 32 / ln 4096)
  EXPECT_EQ(c.max_sequence_length(), 131072);
  EXPECT_EQ(c.long_rope_context(), 4096);
  EXPECT_EQ(c.sliding_window, 262144);
  EXPECT_EQ(std::count(c.windowed_layers.begin(), c.windowed_layers.end(), true), 32);
  EXPECT_EQ(c.num_parameters(), 3821079552);  // Phi-3-mini's 3.8B
  // Without rope_scaling (the 4k models) every position.
  std::string four_k = phi3.substr(0, phi3.rfind(',', phi3.find("\"rope_scaling\""))) + "}";
  four_k.replace(four_k.find("131072"), 6, "4096");
  EXPECT_EQ(ModelConfig::from_json(four_k, "c").max_sequence_length(), 4096);
  EXPECT_EQ(ModelConfig::from_json(four_k, "c").long_rope_context(), 0);
  // A given attention_factor wins; the lists must cover head_dim / 2; original_max_position_embeddings is needed.
  std::string given = phi3;
  given.replace(given.find("\"type\": \"su\""), 12, "\"type\": \"longrope\", \"attention_factor\": 1.5");
  EXPECT_FLOAT_EQ(ModelConfig::from_json(given, "c").rope_scaling->attention_factor, 1.5f);
  std::string short_list = phi3;
  short_list.replace(short_list.find("\"short_factor\": [") + 17, 10, "");  // its first entry
  EXPECT_NE(error_of(short_list).find("short_factor has 47 entries"), std::string::npos) << error_of(short_list);
  std::string no_original = phi3;
  no_original.replace(no_original.find("\"original_max_position_embeddings\": 4096,"), 41, "");
  EXPECT_NE(error_of(no_original).find("original_max_position_embeddings"), std::string::npos);
}

// SmolLM3-3B's config.json: Llama's layout with RoPE in three layers of four (no_rope_layers,
// whose 1 means "uses RoPE"), tied embeddings, pretraining_tp 2 (a slicing of Llama's products in
// transformers, the same values); 3,075,098,624 parameters as published. Without the list,
// no_rope_layer_interval (4 by default) places the NoPE layers at 3, 7, ...; bad lists and the
// sliding window are refused.
TEST(ModelConfig, ReadsSmolLM3WithNoPeLayers) {
  std::string layers = "[";
  for (int i = 0; i < 36; ++i) layers += std::string(i ? ", " : "") + ((i + 1) % 4 ? "1" : "0");
  layers += "]";
  const std::string smol = R"({
    "architectures": ["SmolLM3ForCausalLM"], "model_type": "smollm3", "vocab_size": 128256, "hidden_size": 2048,
    "intermediate_size": 11008, "num_hidden_layers": 36, "num_attention_heads": 16, "num_key_value_heads": 4,
    "hidden_act": "silu", "max_position_embeddings": 65536, "rms_norm_eps": 1e-06, "rope_theta": 5000000.0,
    "rope_scaling": null, "tie_word_embeddings": true, "attention_bias": false, "mlp_bias": false,
    "pretraining_tp": 2, "use_sliding_window": false, "sliding_window": null, "no_rope_layer_interval": 4,
    "layer_types": ["full_attention"], "bos_token_id": null, "eos_token_id": 128012, "pad_token_id": 128004,
    "no_rope_layers": )" + layers + "}";
  const ModelConfig c = ModelConfig::from_json(smol, "config.json");
  EXPECT_EQ(c.num_parameters(), 3075098624);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.sliding_window.has_value());
  ASSERT_EQ(c.rope_layers.size(), 36u);
  for (int l = 0; l < 36; ++l) EXPECT_EQ(c.rotates(l), l % 4 != 3) << l;
  EXPECT_TRUE(ModelConfig::from_json(kLlama, "c").rotates(5));  // every layer elsewhere
  std::string by_interval = smol.substr(0, smol.rfind(',', smol.find("\"no_rope_layers\""))) + "}";
  by_interval.replace(by_interval.find("\"no_rope_layer_interval\": 4"), 27, "\"no_rope_layer_interval\": 3");
  const ModelConfig every_third = ModelConfig::from_json(by_interval, "c");
  for (int l = 0; l < 36; ++l) EXPECT_EQ(every_third.rotates(l), (l + 1) % 3 != 0) << l;
  std::string short_list = smol;
  short_list.replace(short_list.find("[1, 1, 1, 0, "), 13, "[");
  EXPECT_NE(error_of(short_list).find("must list a 0 or 1 for each of the 36 layers"), std::string::npos);
  std::string two = smol;
  two.replace(two.find("[1, 1, 1, 0, "), 13, "[2, 1, 1, 0, ");
  EXPECT_NE(error_of(two).find("\"no_rope_layers\" holds 2"), std::string::npos);
  std::string windowed = smol;
  windowed.replace(windowed.find("\"use_sliding_window\": false"), 27, "\"use_sliding_window\": true");
  EXPECT_NE(error_of(windowed).find("use_sliding_window is not supported"), std::string::npos);
}

// granite-3.1-8b-instruct's config.json (GraniteForCausalLM): Llama's layout with four muP scalars,
// tied embeddings, 8,170,848,256 parameters (the model card's 8.17 B); attention_dropout (0.1) is a
// training switch spin leaves off, as TRL's DPO and SPIN trainers do (disable_dropout). GraniteConfig's
// defaults (1.0 each, the score scale too) when absent; a head_dim other than hidden / heads, which
// GraniteAttention ignores, and non-positive multipliers are refused.
TEST(ModelConfig, ReadsGraniteWithItsMultipliers) {
  const std::string granite = R"({
    "architectures": ["GraniteForCausalLM"], "attention_bias": false, "attention_dropout": 0.1,
    "attention_multiplier": 0.0078125, "bos_token_id": 0, "embedding_multiplier": 12.0, "eos_token_id": 0,
    "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 12800,
    "logits_scaling": 16.0, "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "granite",
    "num_attention_heads": 32, "num_hidden_layers": 40, "num_key_value_heads": 8, "pad_token_id": 0,
    "residual_multiplier": 0.22, "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 10000000.0,
    "tie_word_embeddings": true, "torch_dtype": "bfloat16", "use_cache": true, "vocab_size": 49155})";
  const ModelConfig c = ModelConfig::from_json(granite, "config.json");
  EXPECT_EQ(c.num_parameters(), 8170848256);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.embedding_scale(false), 12.0f);
  EXPECT_EQ(c.embedding_scale(true), 12.0f);
  EXPECT_EQ(c.attention_scores(3).scale, 0.0078125f);  // not 1/sqrt(128)
  EXPECT_EQ(c.residual_multiplier, 0.22f);
  EXPECT_EQ(c.logits_scaling, 16.0f);
  EXPECT_TRUE(c.transforms_branch_outputs());
  EXPECT_FALSE(ModelConfig::from_json(kLlama, "c").transforms_branch_outputs());
  EXPECT_EQ(ModelConfig::from_json(kLlama, "c").embedding_scale(true), 1.0f);
  std::string bare = granite;  // GraniteConfig's defaults
  for (const char* key : {"\"attention_multiplier\": 0.0078125, ", "\"embedding_multiplier\": 12.0, ",
                          "\"logits_scaling\": 16.0, ", "\"residual_multiplier\": 0.22, "}) {
    bare.erase(bare.find(key), std::string(key).size());
  }
  const ModelConfig defaults = ModelConfig::from_json(bare, "c");
  EXPECT_EQ(defaults.attention_scores(0).scale, 1.0f);
  EXPECT_EQ(defaults.embedding_scale(false), 1.0f);
  EXPECT_EQ(defaults.residual_multiplier, 1.0f);
  EXPECT_EQ(defaults.logits_scaling, 1.0f);
  std::string head_dim = granite;
  head_dim.replace(head_dim.find("\"hidden_act\""), 12, "\"head_dim\": 64, \"hidden_act\"");
  EXPECT_NE(error_of(head_dim).find("head_dim 64 is not supported for model_type granite"), std::string::npos)
      << error_of(head_dim);
  std::string zero = granite;
  zero.replace(zero.find("\"logits_scaling\": 16.0"), 22, "\"logits_scaling\": 0.0");
  EXPECT_NE(error_of(zero).find("\"logits_scaling\" must be a positive number"), std::string::npos) << error_of(zero);
}

// A config of Granite 4.0 Micro's layout (granitemoehybrid, every layer "attention"): Granite's
// multipliers, the MLP of shared_intermediate_size (intermediate_size there the unused experts'),
// in the files as shared_mlp.input_linear = [gate; up] and shared_mlp.output_linear. 3,402,836,480
// parameters: per layer 2560 x (2560 + 512 + 512 + 2560) + 3 x 8192 x 2560 + two norms, one embedding
// of 100352 x 2560, the final norm. Mamba-2 layers and experts refused by name; "nope" leaves every
// layer unrotated.
TEST(ModelConfig, ReadsGranite4AttentionOnlyModels) {
  std::string layers = "[";
  for (int i = 0; i < 40; ++i) layers += i ? ", \"attention\"" : "\"attention\"";
  layers += "]";
  const std::string micro = R"({
    "architectures": ["GraniteMoeHybridForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "attention_multiplier": 0.015625, "bos_token_id": 100257, "embedding_multiplier": 12, "eos_token_id": 100257,
    "hidden_act": "silu", "hidden_size": 2560, "intermediate_size": 8192, "logits_scaling": 10,
    "mamba_chunk_size": 256, "mamba_d_conv": 4, "mamba_d_head": 64, "mamba_d_state": 256, "mamba_expand": 2,
    "mamba_n_groups": 1, "mamba_n_heads": 128, "max_position_embeddings": 131072, "model_type": "granitemoehybrid",
    "normalization_function": "rmsnorm", "num_attention_heads": 40, "num_experts_per_tok": 0,
    "num_hidden_layers": 40, "num_key_value_heads": 8, "num_local_experts": 0, "position_embedding_type": "rope",
    "residual_multiplier": 0.22, "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 10000000,
    "shared_intermediate_size": 8192, "tie_word_embeddings": true, "vocab_size": 100352, "layer_types": )" +
                            layers + "}";
  const ModelConfig c = ModelConfig::from_json(micro, "config.json");
  EXPECT_FALSE(c.moe());
  EXPECT_EQ(c.intermediate_size, 8192);
  EXPECT_EQ(c.num_parameters(), 3402836480);
  EXPECT_EQ(c.attention_scores(0).scale, 0.015625f);
  EXPECT_EQ(c.residual_multiplier, 0.22f);
  EXPECT_TRUE(c.rotates(39));
  const HfLayout layout = hf_layout(c);
  const HfLayout::Place up = layout.place("model.layers.7.mlp.up_proj.weight");
  EXPECT_EQ(up.name, "model.layers.7.shared_mlp.input_linear.weight");
  EXPECT_EQ(up.row, 8192);
  EXPECT_EQ(up.rows, 2 * 8192);
  EXPECT_EQ(layout.place("model.layers.7.mlp.down_proj.weight").name, "model.layers.7.shared_mlp.output_linear.weight");
  // The shared MLP's width, not intermediate_size's.
  EXPECT_EQ(ModelConfig::from_json(replaced(micro, {{"\"shared_intermediate_size\": 8192", "\"shared_intermediate_size\": 1024"}}),
                                   "c")
                .intermediate_size,
            1024);
  const ModelConfig nope = ModelConfig::from_json(
      replaced(micro, {{"\"position_embedding_type\": \"rope\"", "\"position_embedding_type\": \"nope\""}}), "c");
  for (std::int64_t l = 0; l < 40; ++l) EXPECT_FALSE(nope.rotates(l)) << l;
  EXPECT_NE(error_of(replaced(micro, {{"[\"attention\", \"attention\"", "[\"mamba\", \"attention\""}}))
                .find("Mamba-2 layers (the H models) are not supported"),
            std::string::npos);
  EXPECT_NE(error_of(replaced(micro, {{"\"num_local_experts\": 0", "\"num_local_experts\": 64"}}))
                .find("num_local_experts 64 is not supported for model_type granitemoehybrid"),
            std::string::npos);
}

// Phi-4-mini-instruct's shape: Phi-3's layout with a partial rotary factor of 0.75 -- 96 of each
// head's 128 dimensions rotate, LongRoPE's lists cover those (48 entries) --, 24 query and 8 kv
// heads, tied embeddings. Other families' partial factors, and factors giving an odd or no
// rotated dimension, are refused.
TEST(ModelConfig, ReadsPhi4MiniWithPartialRotary) {
  const std::string factors = longrope_factors(48);
  const std::string phi4_mini = R"({
    "architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "vocab_size": 200064, "hidden_size": 3072,
    "intermediate_size": 8192, "num_hidden_layers": 32, "num_attention_heads": 24, "num_key_value_heads": 8,
    "hidden_act": "silu", "max_position_embeddings": 131072, "original_max_position_embeddings": 4096,
    "partial_rotary_factor": 0.75, "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 262144,
    "tie_word_embeddings": true, "bos_token_id": 199999, "eos_token_id": 199999, "pad_token_id": 199999,
    "attention_bias": false, "mlp_bias": false, "lm_head_bias": false, "full_attn_mod": 1, "interpolate_factor": 1,
    "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attention_dropout": 0.0,
    "rope_scaling": {"type": "longrope", "short_factor": )" + factors + R"(, "long_factor": )" + factors + "}}";
  const ModelConfig c = ModelConfig::from_json(phi4_mini, "config.json");
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.rotary_dim, 96);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.rope_scaling->short_factor.size(), 48u);
  EXPECT_EQ(c.num_parameters(), 3836021760);  // Phi-4-mini's 3.8B
  EXPECT_EQ(ModelConfig::from_json(kLlama, "c").rotary_dim, 128);  // every dimension by default
  std::string head_long = phi4_mini;  // lists of head_dim / 2 entries no longer fit
  head_long.replace(head_long.find("0.75"), 4, "1.0");
  EXPECT_NE(error_of(head_long).find("has 48 entries; 128 rotated dimensions need 64"), std::string::npos)
      << error_of(head_long);
  std::string odd = phi4_mini;
  odd.replace(odd.find("0.75"), 4, "0.01");  // int(1.28) = 1 dimension
  EXPECT_NE(error_of(odd).find("rotates 1 dimensions"), std::string::npos) << error_of(odd);
  std::string zero = phi4_mini;
  zero.replace(zero.find("0.75"), 4, "0");
  EXPECT_NE(error_of(zero).find("partial_rotary_factor must be a number in (0, 1]"), std::string::npos);
}

// Qwen3-0.6B's config.json as published: head norms, an explicit head_dim (128, not 1024 / 16),
// an integer rope_theta, attention_bias false, no window.
TEST(ModelConfig, ReadsQwen3WithItsHeadNorms) {
  const std::string qwen3 = R"({
    "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 1024,
    "initializer_range": 0.02, "intermediate_size": 3072, "max_position_embeddings": 40960,
    "max_window_layers": 28, "model_type": "qwen3", "num_attention_heads": 16, "num_hidden_layers": 28,
    "num_key_value_heads": 8, "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000,
    "sliding_window": null, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "use_cache": true,
    "use_sliding_window": false, "vocab_size": 151936})";
  const ModelConfig c = ModelConfig::from_json(qwen3, "cfg.json");
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_FLOAT_EQ(c.rope_theta, 1e6f);
  EXPECT_EQ(c.max_sequence_length(), 40960);
  // 0.44B without the (tied) embedding, as published: 28 x 15,730,944 + the final norm.
  EXPECT_EQ(c.num_parameters() - 151936 * 1024, 440467456);
  // DeepSeek-V2 (its latent attention, its routing) is not run.
  EXPECT_NE(error_of(with("model_type", "\"deepseek_v2\"")).find("deepseek_v2"), std::string::npos);
}

// google/gemma-2-2b-it's config.json as published: Gemma's parts, sandwich norms (four per
// layer), scores scaled by query_pre_attn_scalar^-1/2 and capped at 50, logits at 30, the
// 4096-token window in the even layers (sequences up to max_position_embeddings, 8192).
TEST(ModelConfig, ReadsGemma2WithItsCapsAndScoreScale) {
  const std::string gemma2 = R"({
    "architectures": ["Gemma2ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "attn_logit_softcapping": 50.0, "bos_token_id": 2, "cache_implementation": "hybrid", "eos_token_id": [1, 107],
    "final_logit_softcapping": 30.0, "head_dim": 256, "hidden_act": "gelu_pytorch_tanh",
    "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 2304, "initializer_range": 0.02,
    "intermediate_size": 9216, "max_position_embeddings": 8192, "model_type": "gemma2", "num_attention_heads": 8,
    "num_hidden_layers": 26, "num_key_value_heads": 4, "pad_token_id": 0, "query_pre_attn_scalar": 256,
    "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "sliding_window": 4096, "torch_dtype": "float32",
    "transformers_version": "4.42.4", "use_cache": true, "vocab_size": 256000})";
  const ModelConfig c = ModelConfig::from_json(gemma2, "cfg.json");
  EXPECT_TRUE(c.sandwich_norms);
  EXPECT_EQ(c.activation, kernels::Activation::GeluTanh);
  EXPECT_EQ(c.norm_weight_offset, 1.0f);
  EXPECT_TRUE(c.scale_embeddings);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.num_parameters(), 2614341888);  // gemma-2-2b's published count
  EXPECT_EQ(c.attention_scores(0).scale, 0.0625f);
  EXPECT_EQ(c.attention_scores(0).softcap, 50.0f);
  EXPECT_EQ(c.final_logit_softcapping, 30.0f);
  EXPECT_EQ(c.max_sequence_length(), 8192);
  for (std::int64_t l = 0; l < c.num_layers; ++l) EXPECT_EQ(c.attention_scores(l).window, l % 2 == 0 ? 4096 : 0);
  EXPECT_EQ((std::vector<std::int64_t>{1, 107}), c.eos_token_ids);
  // Gemma-2-27B's scalar (hidden / heads = 144 against head_dim 128), a cap switched off (null).
  std::string big = gemma2;
  big.replace(big.find("\"query_pre_attn_scalar\": 256"), 28, "\"query_pre_attn_scalar\": 144");
  big.replace(big.find("\"final_logit_softcapping\": 30.0"), 31, "\"final_logit_softcapping\": null");
  big.erase(big.find("\"sliding_window\": 4096, "), 24);  // Gemma2Config's default: 4096
  const ModelConfig c27 = ModelConfig::from_json(big, "cfg.json");
  EXPECT_EQ(c27.attention_scores(0).window, 4096);
  EXPECT_EQ(c27.attention_scores(0).scale, static_cast<float>(1.0 / 12.0));
  EXPECT_EQ(c27.final_logit_softcapping, 0.0f);
  // Gemma 1 and Llama: 1/sqrt(head_dim), no caps, no sandwich norms.
  const ModelConfig llama = ModelConfig::from_json(kLlama, "cfg.json");
  EXPECT_FALSE(llama.sandwich_norms);
  EXPECT_EQ(llama.attention_scores(0).scale, 1.0f / std::sqrt(static_cast<float>(llama.head_dim)));
  EXPECT_EQ(llama.attention_scores(0).softcap, 0.0f);
  EXPECT_EQ(llama.final_logit_softcapping, 0.0f);
}

// google/gemma-3-1b-it's config.json as published (transformers 4.50): Gemma 2's parts without
// the caps (null), head norms scaling by 1 + w, a 512-token window in five layers of six (5, 11,
// 17 and 23 global), whose RoPE base is rope_local_base_freq (10000) while the global layers'
// is rope_theta (1e6); 999,885,952 parameters as published.
TEST(ModelConfig, ReadsGemma3TextWithItsLocalAndGlobalLayers) {
  const std::string gemma3 = R"({
    "architectures": ["Gemma3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "attn_logit_softcapping": null, "bos_token_id": 2, "cache_implementation": "hybrid", "eos_token_id": [1, 106],
    "final_logit_softcapping": null, "head_dim": 256, "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 1152,
    "initializer_range": 0.02, "intermediate_size": 6912, "max_position_embeddings": 32768,
    "model_type": "gemma3_text", "num_attention_heads": 4, "num_hidden_layers": 26, "num_key_value_heads": 1,
    "pad_token_id": 0, "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_local_base_freq": 10000,
    "rope_scaling": null, "rope_theta": 1000000, "sliding_window": 512, "sliding_window_pattern": 6,
    "torch_dtype": "bfloat16", "transformers_version": "4.50.0.dev0", "use_cache": true, "vocab_size": 262144})";
  const ModelConfig c = ModelConfig::from_json(gemma3, "cfg.json");
  EXPECT_TRUE(c.sandwich_norms);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_EQ(c.norm_weight_offset, 1.0f);
  EXPECT_EQ(c.activation, kernels::Activation::GeluTanh);
  EXPECT_TRUE(c.scale_embeddings);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.num_parameters(), 999885952);
  EXPECT_EQ(c.final_logit_softcapping, 0.0f);
  EXPECT_EQ(c.attention_scores(0).softcap, 0.0f);
  EXPECT_EQ(c.attention_scores(0).scale, 0.0625f);
  EXPECT_FLOAT_EQ(c.rope_theta, 1e6f);
  ASSERT_TRUE(c.rope_local_theta.has_value());
  EXPECT_FLOAT_EQ(*c.rope_local_theta, 1e4f);
  EXPECT_EQ(c.max_sequence_length(), 32768);
  for (std::int64_t l = 0; l < c.num_layers; ++l) {
    EXPECT_EQ(c.attention_scores(l).window, (l + 1) % 6 == 0 ? 0 : 512) << l;
  }
  EXPECT_EQ((std::vector<std::int64_t>{1, 106}), c.eos_token_ids);
  // Gemma3TextConfig's defaults where keys are absent: caps none, window 4096, pattern 6, bases
  // 1e6 and 1e4.
  std::string bare = gemma3;
  for (const char* key : {"\"attn_logit_softcapping\": null, ", "\"final_logit_softcapping\": null, ",
                          "\"rope_local_base_freq\": 10000,", "\"rope_theta\": 1000000, ", "\"sliding_window\": 512, ",
                          "\"sliding_window_pattern\": 6,"}) {
    bare.erase(bare.find(key), std::string(key).size());
  }
  const ModelConfig d = ModelConfig::from_json(bare, "cfg.json");
  EXPECT_EQ(d.attention_scores(0).softcap, 0.0f);
  EXPECT_EQ(d.final_logit_softcapping, 0.0f);
  EXPECT_EQ(d.attention_scores(0).window, 4096);
  EXPECT_EQ(d.attention_scores(5).window, 0);
  EXPECT_FLOAT_EQ(d.rope_theta, 1e6f);
  EXPECT_FLOAT_EQ(*d.rope_local_theta, 1e4f);
}

// gemma-2b's config.json as published: no tie_word_embeddings key (GemmaConfig ties by default),
// the legacy hidden_act "gelu" beside no hidden_activation (transformers' GemmaMLP then runs the
// tanh approximation), head_dim 256 of 8 heads on a hidden size of 2048, one kv head.
TEST(ModelConfig, ReadsGemmaWithItsDefaults) {
  const std::string gemma = R"({
    "architectures": ["GemmaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": 2, "eos_token_id": 1, "head_dim": 256, "hidden_act": "gelu", "hidden_size": 2048,
    "initializer_range": 0.02, "intermediate_size": 16384, "max_position_embeddings": 8192,
    "model_type": "gemma", "num_attention_heads": 8, "num_hidden_layers": 18, "num_key_value_heads": 1,
    "pad_token_id": 0, "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 10000.0,
    "torch_dtype": "bfloat16", "transformers_version": "4.38.0.dev0", "use_cache": true, "vocab_size": 256000})";
  const ModelConfig c = ModelConfig::from_json(gemma, "cfg.json");
  EXPECT_EQ(c.activation, kernels::Activation::GeluTanh);
  EXPECT_EQ(c.norm_weight_offset, 1.0f);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.head_dim, 256);
  EXPECT_EQ(c.num_kv_heads, 1);
  EXPECT_EQ(c.num_parameters(), 2506172416);  // gemma-2b's published count
  EXPECT_EQ(c.embedding_scale(false), 45.254833995939045f);
  EXPECT_EQ(c.embedding_scale(true), 45.25f);  // sqrt(2048) in bf16, as the bf16 model rounds it
  const ModelConfig llama = ModelConfig::from_json(kLlama, "cfg.json");
  EXPECT_EQ(llama.activation, kernels::Activation::Silu);
  EXPECT_EQ(llama.norm_weight_offset, 0.0f);
  EXPECT_EQ(llama.embedding_scale(true), 1.0f);

  // gemma-1.1's explicit hidden_activation; an explicit untie; exact GELU refused by name.
  std::string explicit_act = gemma;
  explicit_act.replace(explicit_act.find("\"hidden_size\""), 0,
                       "\"hidden_activation\": \"gelu_pytorch_tanh\", \"tie_word_embeddings\": false, ");
  const ModelConfig untied = ModelConfig::from_json(explicit_act, "cfg.json");
  EXPECT_EQ(untied.activation, kernels::Activation::GeluTanh);
  EXPECT_FALSE(untied.tie_word_embeddings);
  std::string exact = gemma;
  exact.replace(exact.find("\"hidden_size\""), 0, "\"hidden_activation\": \"gelu\", ");
  EXPECT_NE(error_of(exact).find("hidden_activation \"gelu\" is not supported"), std::string::npos) << error_of(exact);
}

}  // namespace
}  // namespace spin::model
