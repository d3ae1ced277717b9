// ModelConfig of AI2's OLMo families: the first OLMo (LayerNorms without parameters, OLMo 1.7's
// clip_qkv), OLMo 2 (output norms alone, q and k normed across their heads) and OLMo 3 (OLMo 2's
// parts with windows and YaRN in its full-attention layers alone).
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "model/config.h"
#include "unit/model/config_test_util.h"

namespace spin::model {
namespace {

using config_testing::error_of;
using config_testing::kLlama;

// OLMo-1B-hf's config.json (OlmoForCausalLM): LayerNorms without parameters (OlmoLayerNorm's eps
// 1e-5; the config has no rms_norm_eps), tied; 1,176,764,416 parameters (the card's 1.18 B: no
// norm weights). Untied at OLMo-7B-hf's shape: 6,888,095,744 (6.89 B). OLMo 1.7's clip_qkv (8)
// read, its null none; a non-positive one refused.
TEST(ModelConfig, ReadsOlmo) {
  const std::string olmo = R"({
    "architectures": ["OlmoForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "clip_qkv": null,
    "eos_token_id": 50279, "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
    "intermediate_size": 8192, "max_position_embeddings": 2048, "model_type": "olmo", "num_attention_heads": 16,
    "num_hidden_layers": 16, "num_key_value_heads": 16, "pad_token_id": 1, "rope_scaling": null, "rope_theta": 10000.0,
    "tie_word_embeddings": true, "torch_dtype": "float32", "use_cache": true, "vocab_size": 50304})";
  const ModelConfig c = ModelConfig::from_json(olmo, "config.json");
  EXPECT_TRUE(c.layer_norm);
  EXPECT_EQ(c.rms_norm_eps, 1e-5f);
  EXPECT_TRUE(c.pre_norms);
  EXPECT_FALSE(c.sandwich_norms);
  EXPECT_EQ(c.num_parameters(), 1176764416);
  EXPECT_FALSE(ModelConfig::from_json(kLlama, "c").layer_norm);
  std::string seven = olmo;
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"\"hidden_size\": 2048", "\"hidden_size\": 4096"},
           {"\"intermediate_size\": 8192", "\"intermediate_size\": 11008"},
           {"\"num_attention_heads\": 16", "\"num_attention_heads\": 32"},
           {"\"num_hidden_layers\": 16", "\"num_hidden_layers\": 32"},
           {"\"num_key_value_heads\": 16", "\"num_key_value_heads\": 32"},
           {"\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false"}}) {
    seven.replace(seven.find(from), from.size(), to);
  }
  EXPECT_EQ(ModelConfig::from_json(seven, "c").num_parameters(), 6888095744);
  EXPECT_EQ(c.clip_qkv, 0.0f);
  std::string clipped = olmo;
  clipped.replace(clipped.find("\"clip_qkv\": null"), 16, "\"clip_qkv\": 8.0");
  EXPECT_EQ(ModelConfig::from_json(clipped, "c").clip_qkv, 8.0f);
  clipped.replace(clipped.find("\"clip_qkv\": 8.0"), 15, "\"clip_qkv\": 0");
  EXPECT_NE(error_of(clipped).find("\"clip_qkv\" must be a positive number"), std::string::npos) << error_of(clipped);
}

// OLMo-2-1124-7B's config.json (Olmo2ForCausalLM): no input norms, the halves' output norms, q
// and k normed across their heads, untied; 7,298,617,344 parameters (the model card's 7.3 B).
// Olmo2Config has no window, so a sliding_window key is ignored as transformers ignores it; biases
// are refused. OLMo 3 (Olmo-3-7B's shape): windows of 4096 in three layers of four (layer_types, or
// Olmo3Config's pattern without it, and its default window), and its YaRN scaling for the full-attention
// layers alone: the windowed ones rotate by the unscaled table (rope_local_theta = rope_theta).
TEST(ModelConfig, ReadsOlmo2AndOlmo3) {
  const std::string olmo2 = R"({
    "architectures": ["Olmo2ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "eos_token_id": 100257,
    "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 11008,
    "max_position_embeddings": 4096, "model_type": "olmo2", "num_attention_heads": 32, "num_hidden_layers": 32,
    "num_key_value_heads": 32, "pad_token_id": 100277, "rms_norm_eps": 1e-06, "rope_scaling": null,
    "rope_theta": 500000, "tie_word_embeddings": false, "torch_dtype": "float32", "vocab_size": 100352})";
  const ModelConfig c = ModelConfig::from_json(olmo2, "config.json");
  EXPECT_EQ(c.num_parameters(), 7298617344);
  EXPECT_FALSE(c.pre_norms);
  EXPECT_TRUE(c.sandwich_norms);
  EXPECT_TRUE(c.qk_norm_all_heads);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.rope_theta, 500000.0f);
  EXPECT_TRUE(ModelConfig::from_json(kLlama, "c").pre_norms);
  std::string keyed = olmo2;
  keyed.replace(keyed.find("\"rope_theta\""), 12, "\"sliding_window\": 64, \"rope_theta\"");
  EXPECT_FALSE(ModelConfig::from_json(keyed, "c").windowed(0));
  std::string biased = olmo2;
  biased.replace(biased.find("\"attention_bias\": false"), 23, "\"attention_bias\": true");
  // attention_bias: Olmo2Attention's biases on q, k, v and o_proj.
  const ModelConfig with_biases = ModelConfig::from_json(biased, "c");
  EXPECT_TRUE(with_biases.qkv_bias && with_biases.o_bias);

  std::string types = "[";
  for (int l = 0; l < 32; ++l)
    types += std::string(l ? ", " : "") + ((l + 1) % 4 ? "\"sliding_attention\"" : "\"full_attention\"");
  const std::string yarn = R"("rope_scaling": {"attention_factor": 1.2079441541679836, "beta_fast": 32, "beta_slow": 1,
    "factor": 8.0, "original_max_position_embeddings": 8192, "rope_type": "yarn"}, )";
  const std::string olmo3 = R"({"architectures": ["Olmo3ForCausalLM"], "model_type": "olmo3", "vocab_size": 100278,
    "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 32, "max_position_embeddings": 65536, "rms_norm_eps": 1e-06, "rope_theta": 500000, )" +
                            yarn + R"("sliding_window": 4096, "layer_types": )" + types + "]}";
  const ModelConfig c3 = ModelConfig::from_json(olmo3, "config.json");
  EXPECT_TRUE(c3.qk_norm_all_heads);
  EXPECT_FALSE(c3.pre_norms);
  EXPECT_EQ(c3.num_parameters(), 7298011136);
  for (int l = 0; l < 32; ++l) {
    EXPECT_EQ(c3.windowed(l), (l + 1) % 4 != 0) << l;
    EXPECT_EQ(c3.attention_scores(l).window, (l + 1) % 4 != 0 ? 4096 : 0) << l;
  }
  ASSERT_TRUE(c3.rope_scaling.has_value());
  EXPECT_EQ(c3.rope_scaling->type, RopeScaling::Type::Yarn);
  EXPECT_EQ(c3.rope_local_theta, std::optional<float>(500000.0f));  // the windowed layers' unscaled table
  std::string plain = olmo3;                                        // no scaling, Olmo3Config's window and pattern
  plain.erase(plain.find(yarn), yarn.size());
  plain.erase(plain.find("\"sliding_window\": 4096, "), 24);
  plain.erase(plain.find(", \"layer_types\""));
  plain += "}";
  const ModelConfig defaults = ModelConfig::from_json(plain, "c");
  EXPECT_FALSE(defaults.rope_local_theta.has_value());
  for (int l = 0; l < 32; ++l) EXPECT_EQ(defaults.attention_scores(l).window, (l + 1) % 4 != 0 ? 4096 : 0) << l;
  std::string no_theta = plain;
  no_theta.erase(no_theta.find(", \"rope_theta\": 500000"), 22);
  EXPECT_NE(error_of(no_theta).find("missing required key \"rope_theta\""), std::string::npos) << error_of(no_theta);
}

}  // namespace
}  // namespace spin::model
