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
#include <vector>

#include "model/config.h"

namespace spin::model {

// N: the weights of every matrix product a token goes through, forward.
double matmul_parameters(const ModelConfig& config);

// Decoder layer `layer`'s part of N: its attention's and its MLP's (or its experts' and router's).
double layer_matmul_parameters(const ModelConfig& config, std::int64_t layer);

// What a token of a sequence of `seq` tokens costs, forward + backward, in decoder layer `layer`
// and in the LM head: training_flops' terms per token (6 N_layer + 12 d min(seq, window); 6 N_head).
// Their sum over the layers and the head is training_flops of one such sequence over seq.
double layer_flops_per_token(const ModelConfig& config, std::int64_t layer, std::int64_t seq);
double head_flops_per_token(const ModelConfig& config);

// layer_flops_per_token of every decoder layer, in order.
std::vector<double> layer_costs(const ModelConfig& config, std::int64_t seq);

// Training FLOPs a token of each (virtual) pipeline stage holding `counts` layers, in model order:
// its layers' and, on the last, the LM head's.
std::vector<double> stage_flops_per_token(const ModelConfig& config, const std::vector<std::int64_t>& counts,
                                          std::int64_t seq);

// Layers a pipeline stage (`stages`: under interleaving the virtual ones, in model order) that even
// out the stages' training work at sequences of `seq` tokens: model::balanced_split of the layers'
// layer_flops_per_token, the head's on the last stage.
std::vector<std::int64_t> balanced_layers(const ModelConfig& config, int stages, std::int64_t seq);

// The FLOPs of one forward + backward over sequences of these lengths (above).
double training_flops(const ModelConfig& config, std::span<const std::int64_t> sequence_lengths);

}  // namespace spin::model
