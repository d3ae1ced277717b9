#include "model/flops.h"

#include <gtest/gtest.h>

#include <vector>

namespace spin::model {
namespace {

ModelConfig small() {
  return ModelConfig::from_json(
      R"({"model_type": "llama", "vocab_size": 100, "hidden_size": 8, "intermediate_size": 16,
          "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 4,
          "max_position_embeddings": 64, "rms_norm_eps": 1e-5})",
      "test");
}

// Counted by hand: per layer q, o 8 x 8 and k, v 4 x 8 (192), gate, up, down 8 x 16 (384); the LM
// head 100 x 8. Sequences of 3 and 5 tokens: 6 N T + 12 d (3^2 + 5^2) per layer.
TEST(Flops, MatrixParametersAndTrainingFlopsByHand) {
  ModelConfig c = small();
  EXPECT_EQ(matmul_parameters(c), 2 * (192 + 384) + 800);
  const std::int64_t lengths[] = {3, 5};
  EXPECT_EQ(training_flops(c, lengths), 6.0 * 1952 * 8 + 12.0 * 8 * 2 * 34);
  // A window of 4 on the first layer: its 5-token sequence counts 5 x 4 score rows.
  c.sliding_window = 4;
  c.windowed_layers = {true, false};
  EXPECT_EQ(training_flops(c, lengths), 6.0 * 1952 * 8 + 12.0 * 8 * ((9 + 20) + 34));
  // Megatron's num_floating_point_operations for one sequence of s tokens (h = heads x head_dim
  // here, so its query-projection ratio is 1; swiglu's 3/2 on a 16-wide MLP):
  // 12 s L h^2 (1 + 1.5 I/h + groups/heads + s/h + V/(2 L h)).
  c = small();
  const double s = 5, h = 8, L = 2;
  const double megatron = 12 * s * L * h * h * (1 + 1.5 * 16 / h + 0.5 + s / h + 100 / (2 * L * h));
  const std::int64_t one[] = {5};
  EXPECT_DOUBLE_EQ(training_flops(c, one), megatron);
}

// A 2-layer DeepSeek-V3: its first layer dense, its second of experts (LatentAttentionByHand).
ModelConfig small_deepseek_v3() {
  return ModelConfig::from_json(
      R"({"model_type": "deepseek_v3", "vocab_size": 100, "hidden_size": 8, "intermediate_size": 16,
          "moe_intermediate_size": 4, "num_hidden_layers": 2, "first_k_dense_replace": 1, "n_routed_experts": 4,
          "num_experts_per_tok": 2, "n_group": 1, "topk_group": 1, "n_shared_experts": 1,
          "num_attention_heads": 2, "q_lora_rank": 5, "kv_lora_rank": 6, "qk_nope_head_dim": 4,
          "qk_rope_head_dim": 2, "v_head_dim": 3, "max_position_embeddings": 64})",
      "test");
}

// DeepSeek-V3's latent attention, by hand: hidden 8, 2 heads of query and key 4 + 2 (content +
// rotated), values of 3; q through a rank-5 latent, keys and values through a rank-6 one. Per layer
// q_a_proj 8 x 5 (40), q_b_proj 5 x 12 (60), kv_a_proj_with_mqa 8 x (6 + 2) (64), kv_b_proj 6 x 2 x
// (4 + 3) (84), o_proj 6 x 8 (48): 296; a dense MLP 384; the LM head 800. The attention's width: 2 x
// (6 + 3) / 2 = 9 -- scores over 6, sums of values over 3.
TEST(Flops, LatentAttentionByHand) {
  const ModelConfig c = small_deepseek_v3();
  // Layer 1's experts: 2 of 4 wide and the shared one 4 wide, 3 projections of 8 each (288), the router 4 x 8.
  EXPECT_EQ(matmul_parameters(c), 2 * 296 + 384 + (288 + 32) + 800);
  const std::int64_t lengths[] = {3, 5};
  EXPECT_EQ(training_flops(c, lengths), 6.0 * (2 * 296 + 384 + 320 + 800) * 8 + 12.0 * 9 * 2 * 34);
}

// The per-token terms that weigh pipeline stages add up to training_flops of one sequence: every
// layer's (a windowed one's at its window, DeepSeek-V3's dense layer and its layer of experts each
// their own) and the head's.
TEST(Flops, LayerAndHeadTermsAddUpToTrainingFlops) {
  ModelConfig c = small();
  c.sliding_window = 4;
  c.windowed_layers = {true, false};
  const std::int64_t one[] = {9};
  EXPECT_DOUBLE_EQ(9 * (layer_flops_per_token(c, 0, 9) + layer_flops_per_token(c, 1, 9) + head_flops_per_token(c)),
                   training_flops(c, one));
  EXPECT_LT(layer_flops_per_token(c, 0, 9), layer_flops_per_token(c, 1, 9));  // the window's 4 against 9
  EXPECT_EQ(head_flops_per_token(c), 6.0 * 800);
  const ModelConfig v3 = small_deepseek_v3();
  EXPECT_EQ(layer_matmul_parameters(v3, 0), 296 + 384);
  EXPECT_EQ(layer_matmul_parameters(v3, 1), 296 + 288 + 32);
  const std::int64_t five[] = {5};
  EXPECT_DOUBLE_EQ(5 * (layer_flops_per_token(v3, 0, 5) + layer_flops_per_token(v3, 1, 5) + head_flops_per_token(v3)),
                   training_flops(v3, five));
}

// Llama 3 8B's shape (hidden 4,096, MLP 14,336, 8 KV heads of 32, vocabulary 128,256): its head is
// 2.09 layers' work at 4,096 tokens (2.41 of their matrix products), so at PP 4 the even 8 layers a
// stage leave the last stage 10.09 layers' work; balanced 9, 9, 8, 6, the largest is 9 (9, 9, 9, 5
// too, but less even): the pipeline's pace 10.8% faster.
TEST(Flops, BalancedLayersWeighTheHead) {
  const ModelConfig c = ModelConfig::from_json(
      R"({"model_type": "llama", "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
          "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
          "max_position_embeddings": 8192, "rms_norm_eps": 1e-5})",
      "test");
  const double layer = layer_flops_per_token(c, 0, 4096), head = head_flops_per_token(c);
  EXPECT_NEAR(head / layer, 2.09, 0.005);
  EXPECT_NEAR(head / (6 * layer_matmul_parameters(c, 0)), 2.41, 0.005);
  const std::vector<std::int64_t> counts = balanced_layers(c, 4, 4096);
  EXPECT_EQ(counts, (std::vector<std::int64_t>{9, 9, 8, 6}));
  const double even = 8 * layer + head, balanced = 9 * layer;
  EXPECT_NEAR(1 - balanced / even, 0.108, 0.001);
}

}  // namespace
}  // namespace spin::model
