#include "model/flops.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "model/stage.h"

namespace spin::model {

double layer_matmul_parameters(const ModelConfig& c, std::int64_t layer) {
  const auto h = static_cast<double>(c.hidden_size);
  const auto attention = static_cast<double>(c.attention_matrix_parameters());
  const double projections = static_cast<double>(c.mlp_projections()) * h;
  if (!c.moe_layer(layer)) return attention + projections * static_cast<double>(c.dense_mlp_width());
  // A layer of experts: the experts a token goes through, and the router; a shared expert and its
  // gate. A dense layer (a dense model's, a mixture's first_dense_layers): its MLP.
  const double shared = c.shared_expert() ? static_cast<double>(c.shared_expert_intermediate_size) : 0.0;
  return attention + projections * (static_cast<double>(c.intermediate_size * c.experts_per_token) + shared) +
         static_cast<double>(c.num_experts) * h + (c.shared_expert() && c.shared_expert_gated ? h : 0.0);
}

double matmul_parameters(const ModelConfig& c) {
  double n = static_cast<double>(c.vocab_size) * static_cast<double>(c.hidden_size);
  for (std::int64_t layer = 0; layer < c.num_layers; ++layer) n += layer_matmul_parameters(c, layer);
  return n;
}

namespace {
// The scores' width and the values' (latent attention: heads x the mean of head_dim and v_head_dim).
double attention_width(const ModelConfig& c) {
  return static_cast<double>(c.num_heads) * static_cast<double>(c.head_dim + c.value_head_dim()) / 2.0;
}
}  // namespace

double layer_flops_per_token(const ModelConfig& c, std::int64_t layer, std::int64_t seq) {
  const std::int64_t span = c.windowed(layer) ? std::min(seq, *c.sliding_window) : seq;
  return 6.0 * layer_matmul_parameters(c, layer) + 12.0 * attention_width(c) * static_cast<double>(span);
}

double head_flops_per_token(const ModelConfig& c) {
  return 6.0 * static_cast<double>(c.vocab_size) * static_cast<double>(c.hidden_size);
}

std::vector<double> layer_costs(const ModelConfig& c, std::int64_t seq) {
  std::vector<double> costs;
  for (std::int64_t l = 0; l < c.num_layers; ++l) costs.push_back(layer_flops_per_token(c, l, seq));
  return costs;
}

std::vector<double> stage_flops_per_token(const ModelConfig& c, const std::vector<std::int64_t>& counts,
                                          std::int64_t seq) {
  const std::vector<double> costs = layer_costs(c, seq);
  const std::int64_t held = std::accumulate(counts.begin(), counts.end(), std::int64_t{0});
  require(held == c.num_layers, "stages holding ", held, " layers of a model of ", c.num_layers);
  std::vector<double> work;
  auto first = costs.begin();
  for (const std::int64_t n : counts) {
    work.push_back(std::accumulate(first, first + n, 0.0));
    first += n;
  }
  work.back() += head_flops_per_token(c);
  return work;
}

std::vector<std::int64_t> balanced_layers(const ModelConfig& c, int stages, std::int64_t seq) {
  return balanced_split(layer_costs(c, seq), head_flops_per_token(c), stages);
}

double training_flops(const ModelConfig& c, std::span<const std::int64_t> sequence_lengths) {
  // (Scores over head_dim, the values' sums over value_head_dim: their mean width; latent attention's
  // padding of the values is the implementation's, not the model's.)
  const double d = attention_width(c);
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
