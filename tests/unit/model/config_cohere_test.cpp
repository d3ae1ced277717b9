// ModelConfig of Cohere's family (model_type cohere, CohereForCausalLM: Command-R, Aya 23, Aya
// Expanse): LayerNorms with a weight alone, attention and MLP side by side, RoPE in interleaved
// pairs, the logits times logit_scale, tied embeddings; Command R+'s use_qk_norm (a LayerNorm of each
// q and k head with its own weight).
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "model/config.h"
#include "model/weights.h"
#include "unit/model/config_test_util.h"

namespace spin::model {
namespace {

using config_testing::error_of;
using config_testing::replaced;

// aya-23-8B's config.json.
const std::string kAya23 = R"({
  "architectures": ["CohereForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 5,
  "eos_token_id": 255001, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
  "intermediate_size": 14336, "layer_norm_eps": 1e-05, "logit_scale": 0.0625, "max_position_embeddings": 8192,
  "model_type": "cohere", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
  "pad_token_id": 0, "rope_theta": 10000, "torch_dtype": "float16", "use_cache": true, "use_qk_norm": false,
  "vocab_size": 256000})";

// aya-23-8B: 8,028,033,024 parameters (tied 256000 x 4096 embeddings, 32 layers of 218,107,904: GQA
// projections, the MLP, one LayerNorm weight; the final norm's weight); its card's 8 B. Without
// logit_scale and layer_norm_eps CohereConfig's 0.0625 and 1e-5; without tie_word_embeddings, tied.
// c4ai-command-r-v01's shape (hidden 8192, 40 layers, 64 heads, MLP 22528): 34,980,831,232, the
// card's 35 B.
TEST(ModelConfig, ReadsCohere) {
  const ModelConfig c = ModelConfig::from_json(kAya23, "config.json");
  EXPECT_TRUE(c.layer_norm && c.layer_norm_affine);
  EXPECT_FALSE(c.norm_biases());
  EXPECT_TRUE(c.parallel_residual);
  EXPECT_EQ(c.layer_norm_weights(), 1);
  EXPECT_TRUE(c.final_norm_weight());
  EXPECT_EQ(c.rope_pairs, kernels::RopePairs::Interleaved);
  EXPECT_EQ(c.rotary_dim, 128);
  EXPECT_EQ(c.logit_scale, 0.0625f);
  EXPECT_EQ(c.logits_factor(), 0.0625f);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.num_parameters(), 8028033024);
  EXPECT_EQ(ModelConfig::from_json(config_testing::kLlama, "c").rope_pairs, kernels::RopePairs::Halves);
  const ModelConfig defaults = ModelConfig::from_json(
      replaced(kAya23, {{"\"logit_scale\": 0.0625, ", ""}, {"\"layer_norm_eps\": 1e-05, ", ""}}), "c");
  EXPECT_EQ(defaults.logit_scale, 0.0625f);
  EXPECT_EQ(defaults.rms_norm_eps, 1e-5f);
  const std::string command_r = replaced(kAya23, {{"\"hidden_size\": 4096", "\"hidden_size\": 8192"},
                                                  {"\"intermediate_size\": 14336", "\"intermediate_size\": 22528"},
                                                  {"\"num_attention_heads\": 32", "\"num_attention_heads\": 64"},
                                                  {"\"num_hidden_layers\": 32", "\"num_hidden_layers\": 40"},
                                                  {"\"num_key_value_heads\": 8", "\"num_key_value_heads\": 64"}});
  EXPECT_EQ(ModelConfig::from_json(command_r, "c").num_parameters(), 34980831232);

  std::vector<std::string> names;
  for (const ShardedTensor& t : parameter_layout(c, tp_dims(c, 0, 1), StageLayers::whole(c.num_layers))) {
    names.push_back(t.name);
    EXPECT_EQ(t.name.find("post_attention_layernorm"), std::string::npos) << t.name;
    EXPECT_FALSE(t.name.ends_with("norm.bias")) << t.name;
  }
  EXPECT_NE(std::find(names.begin(), names.end(), "model.layers.31.input_layernorm.weight"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "model.norm.weight"), names.end());

  for (const auto& [from, to, message] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"\"logit_scale\": 0.0625", "\"logit_scale\": 0", "\"logit_scale\" must be a positive number"}}) {
    const std::string e = error_of(replaced(kAya23, {{from, to}}));
    EXPECT_NE(e.find(message), std::string::npos) << e;
  }
  // attention_bias: CohereAttention's biases on q, k, v and o_proj.
  const ModelConfig biased =
      ModelConfig::from_json(replaced(kAya23, {{"\"attention_bias\": false", "\"attention_bias\": true"}}), "c");
  EXPECT_TRUE(biased.qkv_bias && biased.o_bias);
}

// c4ai-command-r-plus's config.json.
const std::string kCommandRPlus = R"({
  "architectures": ["CohereForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 5,
  "eos_token_id": 255001, "hidden_act": "silu", "hidden_size": 12288, "initializer_range": 0.02,
  "intermediate_size": 33792, "layer_norm_eps": 1e-05, "logit_scale": 0.8333333333333334,
  "max_position_embeddings": 8192, "model_type": "cohere", "num_attention_heads": 96, "num_hidden_layers": 64,
  "num_key_value_heads": 8, "pad_token_id": 0, "rope_theta": 75000000.0, "torch_dtype": "float16",
  "transformers_version": "4.40.0.dev0", "use_cache": true, "use_qk_norm": true, "vocab_size": 256000})";

// Command R+: 103,810,674,688 parameters (its card's 104 B: tied 256000 x 12288 embeddings, 64 layers
// of 1,572,889,600 -- GQA projections, the MLP, one LayerNorm weight and the q and k norms' 96 + 8
// heads x 128 -- and the final norm). q_norm and k_norm are [heads, head_dim] (CohereLayerNorm's
// (num_heads, head_dim) weight), split over TP with the heads.
TEST(ModelConfig, ReadsCommandRPlusHeadNorms) {
  const ModelConfig c = ModelConfig::from_json(kCommandRPlus, "config.json");
  EXPECT_TRUE(c.qk_head_layernorm);
  EXPECT_FALSE(c.qk_norm || c.qk_norm_all_heads);
  EXPECT_EQ(c.num_parameters(), 103810674688);
  EXPECT_FALSE(ModelConfig::from_json(kAya23, "c").qk_head_layernorm);
  int norms = 0;
  for (const ShardedTensor& t : parameter_layout(c, tp_dims(c, 3, 8), StageLayers{0, 1, true, false})) {
    if (t.name == "model.layers.0.self_attn.q_norm.weight") {
      ++norms;
      EXPECT_EQ(t.global_shape, (Shape{96, 128}));
      EXPECT_EQ(t.split_dim, 0);
      EXPECT_EQ(t.offset, 3 * 12);
      EXPECT_EQ(t.length, 12);
    }
    if (t.name == "model.layers.0.self_attn.k_norm.weight") {
      ++norms;
      EXPECT_EQ(t.global_shape, (Shape{8, 128}));
      EXPECT_EQ(t.offset, 3);
      EXPECT_EQ(t.length, 1);
    }
  }
  EXPECT_EQ(norms, 2);
  const HfLayout layout = hf_layout(c);
  EXPECT_EQ(layout.place("model.layers.7.self_attn.k_norm.weight").name, "model.layers.7.self_attn.k_norm.weight");
}

// c4ai-command-r7b-12-2024's config.json (Cohere2ForCausalLM): Cohere's parts, a 4096-key window in
// three layers of four (sliding_window_pattern 4: layers 3, 7, ... global) and RoPE in those windowed
// layers alone (the global ones attend by content); 8,028,033,024 parameters (aya-23-8B's shape).
// layer_types, where newer transformers write it, decides instead; a cohere2 without a window is
// refused (its global layers are the unwindowed ones).
TEST(ModelConfig, ReadsCohere2) {
  const std::string r7b = R"({
    "architectures": ["Cohere2ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 5,
    "cache_implementation": "hybrid", "eos_token_id": 255001, "head_dim": 128, "hidden_act": "silu",
    "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336, "layer_norm_eps": 1e-05,
    "logit_scale": 0.25, "max_position_embeddings": 8192, "model_type": "cohere2", "num_attention_heads": 32,
    "num_hidden_layers": 32, "num_key_value_heads": 8, "order_of_interleaved_layers": "local_attn_first",
    "pad_token_id": 0, "position_embedding_type": "rope_gptj", "rope_scaling": null, "rope_theta": 50000,
    "rotary_pct": 1.0, "sliding_window": 4096, "sliding_window_pattern": 4, "torch_dtype": "bfloat16",
    "use_cache": true, "use_embedding_sharing": true, "use_gated_activation": true, "use_parallel_block": true,
    "use_parallel_embedding": true, "vocab_size": 256000})";
  const ModelConfig c = ModelConfig::from_json(r7b, "config.json");
  EXPECT_TRUE(c.parallel_residual);
  EXPECT_EQ(c.rope_pairs, kernels::RopePairs::Interleaved);
  EXPECT_EQ(c.logit_scale, 0.25f);
  EXPECT_EQ(c.rope_theta, 50000.0f);
  EXPECT_EQ(c.num_parameters(), 8028033024);
  for (std::int64_t l = 0; l < 32; ++l) {
    const bool global = (l + 1) % 4 == 0;
    EXPECT_EQ(c.windowed(l), !global) << l;
    EXPECT_EQ(c.rotates(l), !global) << l;
    EXPECT_EQ(c.attention_scores(l).window, global ? 0 : 4096) << l;
  }
  std::string types = "[";
  for (int l = 0; l < 32; ++l) types += std::string(l ? ", " : "") + (l == 0 ? "\"full_attention\"" : "\"sliding_attention\"");
  const ModelConfig typed =
      ModelConfig::from_json(replaced(r7b, {{"\"sliding_window_pattern\": 4", "\"layer_types\": " + types + "]"}}), "c");
  EXPECT_FALSE(typed.windowed(0) || typed.rotates(0));
  EXPECT_TRUE(typed.windowed(3) && typed.rotates(3));
  const std::string e = error_of(replaced(r7b, {{"\"sliding_window\": 4096", "\"sliding_window\": null"}}));
  EXPECT_NE(e.find("cohere2 needs a sliding_window"), std::string::npos) << e;
}

}  // namespace
}  // namespace spin::model
