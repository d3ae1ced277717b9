#include "model/flops.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace spin::model
