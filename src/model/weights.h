// ModelWeights: one rank's shard of every parameter of a Llama-family model, all in one flat
// buffer (so that an optimizer, a gradient all-reduce or the reference sync touches one
// allocation), addressed by field and described by Hugging Face name for checkpoints.
// The same type holds parameters and their gradients: identical layout, identical names.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/sharded_tensor.h"
#include "core/tensor.h"
#include "core/workspace.h"
#include "model/config.h"
#include "model/tp_dims.h"

namespace spin::model {

struct LayerWeights {
  Tensor input_layernorm;           // [hidden], replicated
  Tensor q_proj, k_proj, v_proj;    // [heads * head_dim, hidden], column-parallel
  Tensor o_proj;                    // [hidden, heads * head_dim], row-parallel
  Tensor post_attention_layernorm;  // [hidden], replicated
  Tensor gate_proj, up_proj;        // [intermediate, hidden], column-parallel
  Tensor down_proj;                 // [hidden, intermediate], row-parallel
};

class ModelWeights {
 public:
  // All zeros.
  ModelWeights(const ModelConfig& config, const TpDims& dims);

  Tensor embed_tokens;  // [vocab_rows, hidden], vocab-parallel
  std::vector<LayerWeights> layers;
  Tensor norm;     // [hidden], replicated
  Tensor lm_head;  // [vocab_rows, hidden], vocab-parallel; the embed_tokens tensor when tied

  // Every local parameter once (a tied lm_head is not listed twice), in a fixed order that is
  // the same on every rank.
  const std::vector<ShardedTensor>& sharded_state_dict() const { return params_; }
  const Tensor& flat() const { return storage_.buffer(); }

  void zero() { flat().zero_(); }
  // A local copy; `other` must have the same layout (the SPIN reference sync).
  void copy_from(const ModelWeights& other) { flat().copy_from(other.flat()); }
  // Normal(0, std) for matrices and 1 for norms, each value keyed by (seed, parameter, global
  // element index): the same global model for any tensor-parallel layout.
  void init_random(std::uint64_t seed, float std);

 private:
  Workspace storage_;  // one allocation for every parameter
  std::vector<ShardedTensor> params_;
};

}  // namespace spin::model
