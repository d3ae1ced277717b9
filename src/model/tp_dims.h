// How a model's dimensions divide over the tensor-parallel group (Megatron's layout): attention
// heads, kv heads and the MLP width are split evenly; the vocabulary is split into
// ceil(vocab / tp) rows per rank, the last shard padded. Padding rows are never read: lookups of
// them cannot happen and the log-softmax skips them, so padding never changes a result.
#pragma once

#include <algorithm>
#include <cstdint>

#include "model/config.h"

namespace spin::model {

struct TpDims {
  int rank = 0;
  int size = 1;
  std::int64_t hidden = 0;
  std::int64_t head_dim = 0;
  std::int64_t v_head_dim = 0;    // a value head's width: head_dim but in latent attention (ModelConfig::v_head_dim)
  std::int64_t heads = 0;         // query heads on this rank
  std::int64_t kv_heads = 0;      // key/value heads on this rank
  std::int64_t intermediate = 0;  // MLP columns on this rank (each expert's, in a mixture)
  // A dense MLP's columns on this rank: intermediate in a dense model, a mixture's dense layers'
  // (ModelConfig::first_dense_layers; 0 without any).
  std::int64_t dense_intermediate = 0;
  std::int64_t shared_intermediate = 0;  // a mixture's shared expert's (Qwen2-MoE's), 0 without one
  std::int64_t vocab_rows = 0;    // embedding / lm_head rows on this rank, padding included
  std::int64_t vocab_start = 0;   // first vocabulary id held here
  std::int64_t vocab_valid = 0;   // real vocabulary ids held here (<= vocab_rows)

  // Expert parallelism folded onto the TP group (Megatron's MoE parallel folding with the expert-parallel
  // group inside the tensor-parallel one; tp_dims' expert_parallel): the group's ranks form
  // expert_parallel groups of expert_tp = size / expert_parallel consecutive ranks; group g holds experts
  // [first_expert, first_expert + experts) -- num_experts / expert_parallel of them -- each split over its
  // expert_tp ranks as a dense MLP (expert_rank: this rank's place there), and no other expert at all.
  // expert_parallel 1: every rank its share of every expert (expert_tp = size).
  int expert_tp = 1;
  int expert_rank = 0;
  std::int64_t first_expert = 0;
  std::int64_t experts = 0;  // experts on this rank (0 in a dense model)

  bool holds_expert(std::int64_t e) const { return e >= first_expert && e < first_expert + experts; }
  // A mixture's grouped rows on this rank for `rows` tokens at most: each token once per chosen expert
  // this rank holds, k of them at most (model/moe.h) -- rows x k but under expert parallelism, where the
  // count depends on the routing and the buffers hold the most it can be.
  std::int64_t grouped_rows(const ModelConfig& c, std::int64_t rows) const {
    return c.moe() ? rows * std::min(c.experts_per_token, experts) : rows;
  }
  std::int64_t q_width() const { return heads * head_dim; }
  // o_proj's input columns on this rank: the heads' values (q_width but in latent attention).
  std::int64_t o_width() const { return heads * v_head_dim; }
  // The elements of each MLP buffer (gate, up, act, their gradients) for `rows` tokens: rows x
  // intermediate, or a mixture's grouped rows' and then a shared expert's rows' (model/moe.h) -- or its
  // dense layers' where more.
  std::int64_t mlp_values(const ModelConfig& c, std::int64_t rows) const {
    return std::max(grouped_rows(c, rows) * intermediate + rows * shared_intermediate, rows * dense_intermediate);
  }
  std::int64_t kv_width() const { return kv_heads * head_dim; }
  // Latent attention's cached row (DeepSeek-V3's c and rotated key: kv_lora_rank + rotary_dim, whole on every
  // TP rank), 0 otherwise: a generation's KV cache holds that row a token -- its keys, and its values too
  // (model/latent_attention.h) -- in place of kv_width keys and as many values.
  std::int64_t latent_cache = 0;
  // A KV cache's row a token and layer: its keys' (and as wide its values'), or latent attention's one row.
  std::int64_t cache_width() const { return latent_cache > 0 ? latent_cache : kv_width(); }
  // The values a KV cache keeps a token and layer: keys and values, or latent attention's one row.
  std::int64_t cache_values() const { return (latent_cache > 0 ? 1 : 2) * cache_width(); }
};

// Throws spin::Error naming what is not divisible by tp. GQA with fewer kv heads than TP ranks
// is refused (as in Megatron): replicating kv heads would need extra gradient reductions.
// `expert_parallel`: a mixture's experts spread over that many groups of the TP ranks (above); it
// must divide tp_size and num_experts (1 in a dense model).
TpDims tp_dims(const ModelConfig& config, int tp_rank, int tp_size, int expert_parallel = 1);

}  // namespace spin::model
