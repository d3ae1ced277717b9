// Model FLOPs, the convention of Megatron-LM's num_floating_point_operations and PaLM's MFU:
// every matrix product 2 FLOPs a multiply-add, a forward + backward 3 forwards, attention counted
// as if not causal (the whole score matrix). Packed sequences of lengths s_i train in
//   6 N T + 12 L d sum_i s_i * min(s_i, window)
// FLOPs: N the matrix parameters a token meets (the layers' projections -- in a mixture of
// experts the router's and its experts_per_token experts' -- and the LM head, not the embedding's
// lookup), T = sum_i s_i tokens, L layers, d = heads x head_dim (latent attention: heads x the mean of
// head_dim and v_head_dim -- the scores' width and the values'), the window
// where a layer has one. Norms, RoPE, activations and the loss are left out (a few per cent).
#pragma once

#include <cstdint>
#include <span>

#include "model/config.h"

namespace spin::model {

// N: the weights of every matrix product a token goes through, forward.
double matmul_parameters(const ModelConfig& config);

// The FLOPs of one forward + backward over sequences of these lengths (above).
double training_flops(const ModelConfig& config, std::span<const std::int64_t> sequence_lengths);

}  // namespace spin::model
