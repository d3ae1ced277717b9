// ModelConfig of dots.llm1 (model_type dots1, Dots1ForCausalLM): Qwen3's attention with DeepSeek-V3's
// mixture -- a dense first layer, then 128 experts behind the sigmoid router beside two shared experts.
#include <gtest/gtest.h>

#include <string>

#include "model/config.h"
#include "model/flops.h"
#include "unit/model/config_test_util.h"

namespace spin::model {
namespace {

using config_testing::error_of;
using config_testing::replaced;

// dots.llm1.inst's shapes (62 layers, hidden 4096, 32 heads of 128 with as many kv heads, a dense first
// layer of 10944, then 128 experts of 1408, 6 a token, and 2 shared; vocabulary 152064), in
// Dots1Config's keys.
const std::string kDots1 = R"({
  "architectures": ["Dots1ForCausalLM"], "model_type": "dots1", "attention_bias": false, "attention_dropout": 0.0,
  "first_k_dense_replace": 1, "hidden_act": "silu", "hidden_size": 4096, "intermediate_size": 10944,
  "max_position_embeddings": 32768, "max_window_layers": 62, "moe_intermediate_size": 1408, "n_routed_experts": 128,
  "n_shared_experts": 2, "norm_topk_prob": true, "num_attention_heads": 32, "num_experts_per_tok": 6,
  "num_hidden_layers": 62, "num_key_value_heads": 32, "rms_norm_eps": 1e-05, "rope_theta": 10000000,
  "routed_scaling_factor": 2.5, "sliding_window": null, "tie_word_embeddings": false, "vocab_size": 152064})";

// Counted by hand: 62 layers' attention (q, k, v, o 4096 x 4096, head norms of 128, two norms:
// 67,117,312), layer 0's dense MLP 3 x 4096 x 10944 (134,479,872), 61 layers of 128 experts of
// 3 x 4096 x 1408, the router, its bias and the shared experts 3 x 4096 x 2816 (2,249,719,936), untied
// embeddings and head, the final norm: 142,774,381,696 -- the card's 142 B; 13.39 B in a token's products
// (14 B with the embedding's lookup: the card's 14 B activated).
TEST(ModelConfig, ReadsDots1) {
  const ModelConfig c = ModelConfig::from_json(kDots1, "config.json");
  EXPECT_EQ(c.num_parameters(), 142774381696);
  EXPECT_EQ(matmul_parameters(c), 13393199104.0);
  EXPECT_TRUE(c.qk_norm && c.router_sigmoid && c.norm_topk_prob);
  EXPECT_FALSE(c.qkv_bias || c.o_bias || c.shared_expert_gated);
  EXPECT_EQ(c.rotary_dim, 128);
  EXPECT_EQ(c.first_dense_layers, 1);
  EXPECT_EQ(c.shared_expert_intermediate_size, 2816);
  EXPECT_EQ(c.routed_scaling_factor, 2.5f);
  EXPECT_EQ(c.hf_names, ModelConfig::HfNames::DeepseekV3);
  EXPECT_FALSE(c.sliding_window.has_value());
  EXPECT_EQ(c.mtp_layers, 0);
  // Dots1Config's window: from max_window_layers on, 4096 keys where sliding_window is absent.
  const ModelConfig windows = ModelConfig::from_json(
      replaced(kDots1,
               {{"\"max_window_layers\": 62", "\"max_window_layers\": 60"}, {"\"sliding_window\": null, ", ""}}),
      "c");
  ASSERT_TRUE(windows.sliding_window.has_value());
  EXPECT_EQ(*windows.sliding_window, 4096);
  EXPECT_FALSE(windows.windowed(59));
  EXPECT_TRUE(windows.windowed(60) && windows.windowed(61));
  // attention_bias: Qwen3Attention's biases on q, k, v and o_proj.
  const ModelConfig biases =
      ModelConfig::from_json(replaced(kDots1, {{"\"attention_bias\": false", "\"attention_bias\": true"}}), "c");
  EXPECT_TRUE(biases.qkv_bias && biases.o_bias);
  // Its sizes have no defaults; DeepSeek's other routers are refused by name.
  const std::string missing = error_of(replaced(kDots1, {{"\"n_shared_experts\": 2, ", ""}}));
  EXPECT_NE(missing.find("missing required key \"n_shared_experts\" (model_type dots1)"), std::string::npos) << missing;
  const std::string softmax =
      error_of(replaced(kDots1, {{"\"norm_topk_prob\"", "\"scoring_func\": \"softmax\", \"norm_topk_prob\""}}));
  EXPECT_NE(softmax.find("scoring_func \"softmax\" is not supported for model_type dots1"), std::string::npos)
      << softmax;
  const std::string greedy =
      error_of(replaced(kDots1, {{"\"norm_topk_prob\"", "\"topk_method\": \"greedy\", \"norm_topk_prob\""}}));
  EXPECT_NE(greedy.find("topk_method \"greedy\" is not supported"), std::string::npos) << greedy;
}

}  // namespace
}  // namespace spin::model
