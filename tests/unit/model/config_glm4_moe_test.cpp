// ModelConfig of GLM-4.5 / 4.6 (model_type glm4_moe, Glm4MoeForCausalLM): GLM's attention (q, k, v
// biases, half of each head rotating, rotate_half's pairs), a dense first layer, then DeepSeek-V3's
// sigmoid router over 128 experts with an ungated shared expert.
#include <gtest/gtest.h>

#include <string>

#include "model/config.h"
#include "model/flops.h"
#include "unit/model/config_test_util.h"

namespace spin::model {
namespace {

using config_testing::error_of;
using config_testing::replaced;

// GLM-4.5-Air's config.json.
const std::string kGlm45Air = R"({
  "architectures": ["Glm4MoeForCausalLM"], "model_type": "glm4_moe", "attention_bias": true,
  "attention_dropout": 0.0, "pad_token_id": 151329, "eos_token_id": [151329, 151336, 151338], "head_dim": 128,
  "hidden_act": "silu", "hidden_size": 4096, "partial_rotary_factor": 0.5, "initializer_range": 0.02,
  "intermediate_size": 10944, "max_position_embeddings": 131072, "moe_intermediate_size": 1408,
  "norm_topk_prob": true, "num_attention_heads": 96, "n_group": 1, "topk_group": 1, "n_routed_experts": 128,
  "n_shared_experts": 1, "routed_scaling_factor": 1.0, "num_experts_per_tok": 8, "first_k_dense_replace": 1,
  "num_hidden_layers": 46, "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_scaling": null,
  "rope_theta": 1000000, "num_nextn_predict_layers": 1, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "use_cache": true, "use_qk_norm": false, "vocab_size": 151552})";

// Counted by hand: untied 151552 x 4096 embeddings and head (1,241,513,984); 46 layers' attention
// (q 12288 x 4096, k and v 1024 x 4096 with their biases, o_proj 4096 x 12288 without, two norms:
// 109,074,432); layer 0's dense MLP 3 x 4096 x 10944 (134,479,872); 45 layers of experts, each 128
// experts of 3 x 4096 x 1408, the router 128 x 4096, its correction bias 128 and the shared expert
// 3 x 4096 x 1408 (2,232,418,432); the final norm: 106,852,251,264 -- the card's 106 B (its MTP layer
// aside). A token meets 12.8 B of them in products: 46 x 4096 x 128 x 208 in attention, 8 experts and
// the shared one and the router in 45 layers, the dense MLP, the head.
TEST(ModelConfig, ReadsGlm45Air) {
  const ModelConfig c = ModelConfig::from_json(kGlm45Air, "config.json");
  EXPECT_EQ(c.num_parameters(), 106852251264);
  EXPECT_EQ(matmul_parameters(c), 12802326528.0);
  EXPECT_EQ(c.num_experts, 128);
  EXPECT_EQ(c.experts_per_token, 8);
  EXPECT_EQ(c.intermediate_size, 1408);
  EXPECT_EQ(c.dense_intermediate_size, 10944);
  EXPECT_EQ(c.dense_mlp_width(), 10944);
  EXPECT_EQ(c.first_dense_layers, 1);
  EXPECT_FALSE(c.moe_layer(0));
  EXPECT_TRUE(c.moe_layer(1) && c.moe_layer(45));
  EXPECT_EQ(c.moe_layers(), 45);
  EXPECT_EQ(c.shared_expert_intermediate_size, 1408);
  EXPECT_FALSE(c.shared_expert_gated);
  EXPECT_EQ(c.router_logits(), 128);
  EXPECT_TRUE(c.router_sigmoid && c.norm_topk_prob);
  EXPECT_EQ(c.routed_scaling_factor, 1.0f);
  EXPECT_EQ(c.expert_groups, 1);
  EXPECT_EQ(c.expert_groups_chosen, 1);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias || c.mlp_bias || c.qk_norm || c.sandwich_norms);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.rotary_dim, 64);
  EXPECT_EQ(c.rope_pairs, kernels::RopePairs::Halves);  // not GLM-4's interleaved pairs
  EXPECT_EQ(c.mtp_layers, 1);
  EXPECT_EQ(c.hf_names, ModelConfig::HfNames::DeepseekV3);
  EXPECT_EQ(c.eos_token_ids, (std::vector<std::int64_t>{151329, 151336, 151338}));
}

// GLM-4.5's shapes (hidden 5120, 92 layers, 3 dense of 12288, 160 experts of 1536, routed weights
// times 2.5, head norms): 92 layers' attention of 136,339,712 (with q and k norms of 128), 3 dense MLPs
// of 188,743,680, 89 layers of experts of 3,799,285,920, embeddings, head and final norm:
// 352,797,829,024 (the card's 355 B with its MTP layer), 32.85 B a token.
TEST(ModelConfig, ReadsGlm45) {
  const ModelConfig c = ModelConfig::from_json(
      replaced(kGlm45Air, {{"\"hidden_size\": 4096", "\"hidden_size\": 5120"},
                           {"\"num_hidden_layers\": 46", "\"num_hidden_layers\": 92"},
                           {"\"first_k_dense_replace\": 1", "\"first_k_dense_replace\": 3"},
                           {"\"intermediate_size\": 10944", "\"intermediate_size\": 12288"},
                           {"\"moe_intermediate_size\": 1408", "\"moe_intermediate_size\": 1536"},
                           {"\"n_routed_experts\": 128", "\"n_routed_experts\": 160"},
                           {"\"routed_scaling_factor\": 1.0", "\"routed_scaling_factor\": 2.5"},
                           {"\"use_qk_norm\": false", "\"use_qk_norm\": true"}}),
      "config.json");
  EXPECT_EQ(c.num_parameters(), 352797829024);
  EXPECT_EQ(matmul_parameters(c), 32854016000.0);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_EQ(c.routed_scaling_factor, 2.5f);
  EXPECT_EQ(c.moe_layers(), 89);
}

// Glm4MoeConfig's defaults where the keys are absent (GLM-4.5-Air's shapes but rope_theta and the
// bias: attention_bias false), and the refusals by name.
TEST(ModelConfig, Glm4MoeDefaultsAndRefusals) {
  const ModelConfig defaults = ModelConfig::from_json(R"({"model_type": "glm4_moe", "vocab_size": 151552,
      "hidden_size": 4096, "num_hidden_layers": 46, "num_attention_heads": 96, "num_key_value_heads": 8,
      "max_position_embeddings": 131072})",
                                                      "c");
  EXPECT_EQ(defaults.num_experts, 128);
  EXPECT_EQ(defaults.experts_per_token, 8);
  EXPECT_EQ(defaults.intermediate_size, 1408);
  EXPECT_EQ(defaults.dense_intermediate_size, 10944);
  EXPECT_EQ(defaults.first_dense_layers, 1);
  EXPECT_EQ(defaults.shared_expert_intermediate_size, 1408);
  EXPECT_EQ(defaults.head_dim, 128);
  EXPECT_EQ(defaults.rotary_dim, 64);
  EXPECT_EQ(defaults.rms_norm_eps, 1e-5f);
  EXPECT_EQ(defaults.mtp_layers, 0);
  EXPECT_FALSE(defaults.qkv_bias || defaults.tie_word_embeddings);
  EXPECT_TRUE(defaults.norm_topk_prob && defaults.router_sigmoid);
  // Two shared experts: one MLP of twice the width.
  EXPECT_EQ(ModelConfig::from_json(replaced(kGlm45Air, {{"\"n_shared_experts\": 1", "\"n_shared_experts\": 2"}}), "c")
                .shared_expert_intermediate_size,
            2816);
  const auto refused = [&](const std::string& from, const std::string& to, const std::string& says) {
    const std::string e = error_of(replaced(kGlm45Air, {{from, to}}));
    EXPECT_NE(e.find(says), std::string::npos) << e;
  };
  refused("\"n_group\": 1", "\"n_group\": 3", "n_group 3 does not divide n_routed_experts 128");
  refused("\"n_group\": 1, \"topk_group\": 1", "\"n_group\": 64, \"topk_group\": 2",
          "topk_group 2 of n_group 64 groups of 2 experts cannot hold num_experts_per_tok 8");
  refused("\"first_k_dense_replace\": 1", "\"first_k_dense_replace\": 46",
          "first_k_dense_replace 46 leaves no layer of experts");
  refused("\"first_k_dense_replace\": 1", "\"first_k_dense_replace\": -1",
          "\"first_k_dense_replace\" must be an integer >= 0");
  refused("\"use_cache\": true", "\"output_router_logits\": true", "output_router_logits true is not supported");
}

}  // namespace
}  // namespace spin::model
