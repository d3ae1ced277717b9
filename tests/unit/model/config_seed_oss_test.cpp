// ModelConfig of Seed-OSS (model_type seed_oss, SeedOssForCausalLM): Llama's layers with biases on q,
// k and v, optionally on o_proj and the MLP, head_dim apart from hidden / heads.
#include <gtest/gtest.h>

#include <string>

#include "model/config.h"
#include "unit/model/config_test_util.h"

namespace spin::model {
namespace {

using config_testing::error_of;
using config_testing::replaced;

// Seed-OSS-36B-Instruct's shape (hidden 5120, 64 layers, 80 heads of 128, 8 kv heads, MLP 27648,
// vocabulary 155136), with SeedOssConfig's keys.
const std::string kSeedOss = R"({
  "architectures": ["SeedOssForCausalLM"], "model_type": "seed_oss", "attention_bias": true,
  "attention_out_bias": false, "mlp_bias": false, "attention_dropout": 0.1, "residual_dropout": 0.1,
  "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1, "head_dim": 128, "hidden_act": "silu",
  "hidden_size": 5120, "intermediate_size": 27648, "max_position_embeddings": 524288, "num_attention_heads": 80,
  "num_hidden_layers": 64, "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-06,
  "rope_theta": 10000000.0, "tie_word_embeddings": false, "vocab_size": 155136})";

// Counted by hand: untied 155136 x 5120 embeddings and head (1,588,592,640), 64 layers of 540,039,168
// (q 10240 x 5120 and k, v 1024 x 5120 with their biases, o_proj 5120 x 10240 without, the MLP
// 3 x 5120 x 27648, two norms), the final norm: 36,151,104,512 -- the card's 36 B.
TEST(ModelConfig, ReadsSeedOss) {
  const ModelConfig c = ModelConfig::from_json(kSeedOss, "config.json");
  EXPECT_EQ(c.num_parameters(), 36151104512);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias || c.mlp_bias);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.rope_pairs, kernels::RopePairs::Halves);
  // attention_out_bias and mlp_bias each add their biases: o_proj's 5120, the MLP's 2 x 27648 + 5120 a layer.
  const ModelConfig o_bias = ModelConfig::from_json(
      replaced(kSeedOss, {{"\"attention_out_bias\": false", "\"attention_out_bias\": true"}}), "c");
  EXPECT_TRUE(o_bias.o_bias);
  EXPECT_EQ(o_bias.num_parameters() - c.num_parameters(), 64 * 5120);
  const ModelConfig mlp_bias =
      ModelConfig::from_json(replaced(kSeedOss, {{"\"mlp_bias\": false", "\"mlp_bias\": true"}}), "c");
  EXPECT_EQ(mlp_bias.num_parameters() - c.num_parameters(), 64 * (2 * 27648 + 5120));
  // SeedOssConfig's defaults where the keys are absent: q, k, v biases, head_dim 128, eps 1e-6.
  const ModelConfig defaults = ModelConfig::from_json(
      replaced(kSeedOss,
               {{"\"attention_bias\": true,", ""}, {"\"head_dim\": 128, ", ""}, {"\"rms_norm_eps\": 1e-06,", ""}}),
      "c");
  EXPECT_TRUE(defaults.qkv_bias);
  EXPECT_EQ(defaults.head_dim, 128);
  EXPECT_EQ(defaults.rms_norm_eps, 1e-6f);
  const std::string flag = error_of(replaced(kSeedOss, {{"\"mlp_bias\": false", "\"mlp_bias\": 1"}}));
  EXPECT_NE(flag.find("mlp_bias"), std::string::npos) << flag;
}

}  // namespace
}  // namespace spin::model
