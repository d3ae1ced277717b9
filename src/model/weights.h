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
#include "model/stage.h"
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
  // All zeros: this rank's TP shard of the whole model (one pipeline stage).
  ModelWeights(const ModelConfig& config, const TpDims& dims)
      : ModelWeights(config, dims, StageLayers::whole(config.num_layers)) {}
  // All zeros: this rank's TP shard of the pipeline stage `stage`, on `device`. The flat
  // buffer's length is a multiple of `pad_multiple` (the distributed optimizer splits it evenly
  // over DP).
  ModelWeights(const ModelConfig& config, const TpDims& dims, const StageLayers& stage,
               std::int64_t pad_multiple = 1, Device device = Device::Cpu);

  Tensor embed_tokens;              // [vocab_rows, hidden], vocab-parallel; first stage only
  std::vector<LayerWeights> layers;  // this stage's layers, layers[0] = global layer stage.begin
  Tensor norm;                      // [hidden], replicated; last stage only
  // [vocab_rows, hidden], vocab-parallel; last stage only. With tied embeddings it is the
  // embed_tokens tensor when one stage holds both, and otherwise a second copy of
  // "model.embed_tokens.weight" (not primary) kept equal by the embedding-group all-reduce.
  Tensor lm_head;

  // Every local parameter once (a tied lm_head held with embed_tokens is not listed twice), in
  // the model's order.
  const std::vector<ShardedTensor>& sharded_state_dict() const { return params_; }
  const Tensor& flat() const { return storage_.buffer(); }

  void zero() { flat().zero_(); }
  Device device() const { return flat().device(); }
  // A copy of `other`, which has the same layout; the devices may differ (the SPIN reference
  // sync; weights read on the host and moved to the GPU).
  void copy_from(const ModelWeights& other) { flat().copy_from(other.flat()); }
  // Normal(0, std) for matrices and 1 for norms, each value keyed by (seed, parameter name,
  // global element index): the same global model for any TP / PP layout.
  void init_random(std::uint64_t seed, float std);

 private:
  Workspace storage_;  // one allocation for every parameter
  std::vector<ShardedTensor> params_;
};

// The parameters ModelWeights(config, dims, stage) holds, described without storage (`local`
// is empty): names, global shapes, splits and primary flags, for tools that place a model's
// tensors without allocating it (checkpoint conversion).
std::vector<ShardedTensor> parameter_layout(const ModelConfig& config, const TpDims& dims,
                                            const StageLayers& stage);

}  // namespace spin::model
