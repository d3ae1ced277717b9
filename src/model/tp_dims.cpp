#include "model/tp_dims.h"

#include <algorithm>

#include "core/error.h"

namespace spin::model {

TpDims tp_dims(const ModelConfig& c, int tp_rank, int tp_size, int expert_parallel) {
  const auto divides = [&](std::int64_t value, const char* what) {
    require(value % tp_size == 0, what, " (", value, ") is not divisible by tensor-parallel size ",
            tp_size);
    return value / tp_size;
  };
  TpDims d;
  d.rank = tp_rank;
  d.size = tp_size;
  d.hidden = c.hidden_size;
  d.head_dim = c.head_dim;
  d.v_head_dim = c.value_head_dim();
  d.latent_cache = c.latent_attention() ? c.kv_lora_rank + c.rotary_dim : 0;
  d.heads = divides(c.num_heads, "num_attention_heads");
  d.kv_heads = divides(c.num_kv_heads, "num_key_value_heads");
  require(expert_parallel >= 1, "expert-parallel size ", expert_parallel, " is not a positive count");
  require(expert_parallel == 1 || c.moe(), "expert-parallel size ", expert_parallel,
          ": the model has no experts (a dense model runs at expert-parallel size 1)");
  require(tp_size % expert_parallel == 0, "expert-parallel size ", expert_parallel,
          " does not divide tensor-parallel size ", tp_size,
          " (the expert-parallel groups are carved from the TP group: docs/parallelism.md)");
  require(!c.moe() || c.num_experts % expert_parallel == 0, "num_experts (", c.num_experts,
          ") is not divisible by expert-parallel size ", expert_parallel);
  d.expert_tp = tp_size / expert_parallel;
  d.expert_rank = tp_rank % d.expert_tp;
  d.experts = c.num_experts / expert_parallel;
  d.first_expert = (tp_rank / d.expert_tp) * d.experts;
  if (c.moe()) {
    require(c.intermediate_size % d.expert_tp == 0, "each expert's intermediate_size (", c.intermediate_size,
            ") is not divisible by its tensor-parallel size ", d.expert_tp, " (tp ", tp_size, " / expert-parallel ",
            expert_parallel, ")");
    d.intermediate = c.intermediate_size / d.expert_tp;
  } else {
    d.intermediate = divides(c.intermediate_size, "intermediate_size");
  }
  d.dense_intermediate = c.moe() ? divides(c.dense_mlp_width(), "the dense layers' intermediate_size") : d.intermediate;
  if (c.shared_expert()) {
    d.shared_intermediate = divides(c.shared_expert_intermediate_size, "shared_expert_intermediate_size");
  }
  d.vocab_rows = (c.vocab_size + tp_size - 1) / tp_size;
  d.vocab_start = std::min<std::int64_t>(c.vocab_size, tp_rank * d.vocab_rows);
  d.vocab_valid = std::clamp<std::int64_t>(c.vocab_size - d.vocab_start, 0, d.vocab_rows);
  return d;
}

}  // namespace spin::model
