#include "model/flops.h"

#include <algorithm>

namespace spin::model {

double matmul_parameters(const ModelConfig& c) {
  const auto h = static_cast<double>(c.hidden_size);
  const auto attention = static_cast<double>(c.attention_matrix_parameters());
  // A layer of experts: the experts a token goes through, and the router; a shared expert and its
  // gate. A dense layer (a dense model's, a mixture's first_dense_layers): its MLP.
  const double shared = c.shared_expert() ? static_cast<double>(c.shared_expert_intermediate_size) : 0.0;
  const double projections = static_cast<double>(c.mlp_projections()) * h;
  const double experts = projections * (static_cast<double>(c.intermediate_size * c.experts_per_token) + shared) +
                         static_cast<double>(c.num_experts) * h +
                         (c.shared_expert() && c.shared_expert_gated ? h : 0.0);
  const double dense = projections * static_cast<double>(c.dense_mlp_width());
  const auto moe_layers = static_cast<double>(c.moe_layers());
  return static_cast<double>(c.num_layers) * attention + moe_layers * experts +
         (static_cast<double>(c.num_layers) - moe_layers) * dense + static_cast<double>(c.vocab_size) * h;
}

double training_flops(const ModelConfig& c, std::span<const std::int64_t> sequence_lengths) {
  // (Scores over head_dim, the values' sums over value_head_dim: their mean width; latent attention's
  // padding of the values is the implementation's, not the model's.)
  const double d = static_cast<double>(c.num_heads) * static_cast<double>(c.head_dim + c.value_head_dim()) / 2.0;
  double tokens = 0.0, attention = 0.0;
  for (const std::int64_t s : sequence_lengths) {
    tokens += static_cast<double>(s);
    for (std::int64_t layer = 0; layer < c.num_layers; ++layer) {
      const std::int64_t span = c.windowed(layer) ? std::min(s, *c.sliding_window) : s;
      attention += static_cast<double>(s) * static_cast<double>(span);
    }
  }
  return 6.0 * matmul_parameters(c) * tokens + 12.0 * d * attention;
}

}  // namespace spin::model
