#include "model/tp_dims.h"

#include <algorithm>

#include "core/error.h"

namespace spin::model {

TpDims tp_dims(const ModelConfig& c, int tp_rank, int tp_size) {
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
  d.intermediate = divides(c.intermediate_size, c.moe() ? "each expert's intermediate_size" : "intermediate_size");
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
