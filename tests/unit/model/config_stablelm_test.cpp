// ModelConfig of Stability AI's StableLM family (model_type stablelm, StableLmForCausalLM):
// LayerNorms with weights and biases, RoPE over a quarter of each head, biases on q, k and v where
// use_qkv_bias says so, StableLM 2 12B's per-head q / k LayerNorms; what spin does not run of it
// refused by name.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "model/config.h"
#include "model/weights.h"
#include "unit/model/config_test_util.h"

namespace spin::model {
namespace {

using config_testing::error_of;
using config_testing::replaced;

// stablelm-2-1_6b's config.json.
const std::string kStableLm2 = R"({
  "architectures": ["StableLmForCausalLM"], "bos_token_id": 100257, "eos_token_id": 100257, "hidden_act": "silu",
  "hidden_dropout": 0.0, "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 5632,
  "layer_norm_eps": 1e-05, "max_position_embeddings": 4096, "model_type": "stablelm", "num_attention_heads": 32,
  "num_hidden_layers": 24, "num_key_value_heads": 32, "partial_rotary_factor": 0.25, "qk_layernorm": false,
  "rope_scaling": null, "rope_theta": 10000, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "use_cache": true, "use_parallel_residual": false, "use_qkv_bias": true, "vocab_size": 100352})";

// stablelm-2-1_6b: LayerNorms with a weight and a bias, a quarter of each head rotating (16 of
// 64), q/k/v biases; 1,644,515,328 parameters as StableLmForCausalLM holds them (two untied
// 100352 x 2048 embeddings, 24 layers of 51,394,560: projections, q/k/v biases, two LayerNorms of
// weight and bias; the final LayerNorm). stablelm-3b-4e1t's shape (no q/k/v biases; partial_rotary_factor
// left out for StableLmConfig's 0.25): 2,795,443,200. Each norm's bias sits beside its weight in
// the parameter layout, under Hugging Face's names. With use_parallel_residual a layer has one norm.
TEST(ModelConfig, ReadsStableLm) {
  const ModelConfig c = ModelConfig::from_json(kStableLm2, "config.json");
  EXPECT_TRUE(c.layer_norm);
  EXPECT_TRUE(c.layer_norm_affine);
  EXPECT_TRUE(c.norm_biases());
  EXPECT_EQ(c.layer_norm_weights(), 2);
  EXPECT_TRUE(c.final_norm_weight());
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.rotary_dim, 16);
  EXPECT_EQ(c.rms_norm_eps, 1e-5f);
  EXPECT_EQ(c.num_parameters(), 1644515328);
  const ModelConfig three = ModelConfig::from_json(
      replaced(kStableLm2,
               {{"\"hidden_size\": 2048", "\"hidden_size\": 2560"},
                {"\"intermediate_size\": 5632", "\"intermediate_size\": 6912"},
                {"\"num_hidden_layers\": 24", "\"num_hidden_layers\": 32"},
                {"\"partial_rotary_factor\": 0.25, ", ""},
                {"\"use_qkv_bias\": true", "\"use_qkv_bias\": false"},
                {"\"layer_norm_eps\": 1e-05, ", ""},
                {"\"vocab_size\": 100352", "\"vocab_size\": 50304"},
                {"\"bos_token_id\": 100257, \"eos_token_id\": 100257", "\"bos_token_id\": 0, \"eos_token_id\": 0"}}),
      "c");
  EXPECT_FALSE(three.qkv_bias);
  EXPECT_EQ(three.rotary_dim, 20);  // int(80 x 0.25)
  EXPECT_EQ(three.rms_norm_eps, 1e-5f);
  EXPECT_EQ(three.num_parameters(), 2795443200);

  std::vector<std::string> names;
  for (const ShardedTensor& t : parameter_layout(c, tp_dims(c, 0, 1), StageLayers::whole(c.num_layers))) {
    names.push_back(t.name);
  }
  for (const char* name : {"model.layers.0.input_layernorm.bias", "model.layers.23.post_attention_layernorm.bias",
                           "model.norm.bias", "model.layers.5.self_attn.v_proj.bias"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
  }
  const auto at = [&](const std::string& name) { return std::find(names.begin(), names.end(), name) - names.begin(); };
  EXPECT_EQ(at("model.norm.bias"), at("model.norm.weight") + 1);

  // use_parallel_residual: attention and MLP both read the input norm; no post_attention_layernorm
  // (2 x 2048 a layer fewer).
  const ModelConfig parallel = ModelConfig::from_json(
      replaced(kStableLm2, {{"\"use_parallel_residual\": false", "\"use_parallel_residual\": true"}}), "c");
  EXPECT_TRUE(parallel.parallel_residual);
  EXPECT_FALSE(c.parallel_residual);
  EXPECT_EQ(parallel.layer_norm_weights(), 1);
  EXPECT_EQ(parallel.num_parameters(), 1644515328 - 24 * 2 * 2048);
  for (const ShardedTensor& t : parameter_layout(parallel, tp_dims(parallel, 0, 1), StageLayers::whole(24))) {
    EXPECT_EQ(t.name.find("post_attention_layernorm"), std::string::npos) << t.name;
  }

  for (const auto& [edit, message] : std::vector<std::pair<std::pair<std::string, std::string>, std::string>>{
           {{"\"use_qkv_bias\": true", "\"use_qkv_bias\": 1"}, "\"use_qkv_bias\" must be true or false"},
           {{"\"layer_norm_eps\": 1e-05", "\"layer_norm_eps\": 0"}, "\"layer_norm_eps\" must be a positive number"},
           {{"\"partial_rotary_factor\": 0.25", "\"partial_rotary_factor\": 0.01"}, "rotates 0 dimensions"}}) {
    const std::string e = error_of(replaced(kStableLm2, {edit}));
    EXPECT_NE(e.find(message), std::string::npos) << e;
  }
  // Only Phi-3's and StableLM's families rotate part of a head.
  const std::string llama = config_testing::with("partial_rotary_factor", "0.5");
  EXPECT_NE(error_of(llama).find("phi3, stablelm, gpt_neox, phi, glm, glm4 and glm4_moe only"), std::string::npos)
      << error_of(llama);
}

// stablelm-2-12b's shape (hidden 5120, 40 layers, 32 heads of 160, 8 kv heads, MLP 13824, no q/k/v
// biases, attention and MLP side by side from one LayerNorm, qk_layernorm): 12,143,185,920
// parameters (its card's 12.1 B), of which each layer's q and k norms are a LayerNorm weight a
// head -- [heads, head_dim] in spin, split over TP with the heads; a module a head in the files
// (StableLmLayerNormPerHead: q_layernorm.norms.<h>.weight).
TEST(ModelConfig, ReadsStableLm2_12bHeadNorms) {
  const ModelConfig c = ModelConfig::from_json(
      replaced(kStableLm2, {{"\"hidden_size\": 2048", "\"hidden_size\": 5120"},
                            {"\"intermediate_size\": 5632", "\"intermediate_size\": 13824"},
                            {"\"num_hidden_layers\": 24", "\"num_hidden_layers\": 40"},
                            {"\"num_key_value_heads\": 32", "\"num_key_value_heads\": 8"},
                            {"\"qk_layernorm\": false", "\"qk_layernorm\": true"},
                            {"\"use_parallel_residual\": false", "\"use_parallel_residual\": true"},
                            {"\"use_qkv_bias\": true", "\"use_qkv_bias\": false"}}),
      "config.json");
  EXPECT_TRUE(c.qk_head_layernorm);
  EXPECT_EQ(c.head_dim, 160);
  EXPECT_EQ(c.num_parameters(), 12143185920);
  EXPECT_FALSE(ModelConfig::from_json(kStableLm2, "c").qk_head_layernorm);
  bool found = false;
  for (const ShardedTensor& t : parameter_layout(c, tp_dims(c, 1, 8), StageLayers{0, 1, true, false})) {
    if (t.name != "model.layers.0.self_attn.k_norm.weight") continue;
    found = true;
    EXPECT_EQ(t.global_shape, (Shape{8, 160}));
    EXPECT_EQ(t.offset, 1);
    EXPECT_EQ(t.length, 1);
  }
  EXPECT_TRUE(found);
  const HfLayout layout = hf_layout(c);
  EXPECT_EQ(layout.row_name("model.layers.3.self_attn.q_norm.weight", 31),
            "model.layers.3.self_attn.q_layernorm.norms.31.weight");
  EXPECT_EQ(layout.row_name("model.layers.3.self_attn.k_norm.weight", 7),
            "model.layers.3.self_attn.k_layernorm.norms.7.weight");
  EXPECT_EQ(layout.row_name("model.layers.3.input_layernorm.weight", 0), "");
}

}  // namespace
}  // namespace spin::model
