#include "model/flops.h"

#include <algorithm>

namespace spin::model {

double matmul_parameters(const ModelConfig& c) {
  const auto h = static_cast<double>(c.hidden_size);
  const double attention = h * static_cast<double>(c.head_dim) * 2.0 * static_cast<double>(c.num_heads + c.num_kv_heads);
  // A mixture of experts: the experts a token goes through, and the router; a shared expert and its gate.
  const double experts = c.moe() ? static_cast<double>(c.experts_per_token) : 1.0;
  const double shared = c.shared_expert() ? static_cast<double>(c.shared_expert_intermediate_size) : 0.0;
  const double mlp =
      static_cast<double>(c.mlp_projections()) * h * (static_cast<double>(c.intermediate_size) * experts + shared) +
      static_cast<double>(c.num_experts) * h + (c.shared_expert() ? h : 0.0);
  return static_cast<double>(c.num_layers) * (attention + mlp) + static_cast<double>(c.vocab_size) * h;
}

double training_flops(const ModelConfig& c, std::span<const std::int64_t> sequence_lengths) {
  const double d = static_cast<double>(c.num_heads) * static_cast<double>(c.head_dim);
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
