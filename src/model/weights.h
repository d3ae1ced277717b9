// ModelWeights: one rank's shard of every parameter of a Llama-family model, all in one flat
// buffer (so that an optimizer, a gradient all-reduce or the reference sync touches one
// allocation), addressed by field and described by Hugging Face name for checkpoints.
// The same type holds parameters and their gradients: identical layout, identical names.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/hf_layout.h"
#include "core/sharded_tensor.h"
#include "core/tensor.h"
#include "core/workspace.h"
#include "kernels/kernels.h"
#include "model/config.h"
#include "model/lora.h"
#include "model/stage.h"
#include "model/tp_dims.h"

namespace spin::model {

struct LayerWeights {
  Tensor input_layernorm;           // [hidden], replicated
  Tensor q_proj, k_proj, v_proj;    // [heads * head_dim, hidden], column-parallel
  Tensor o_proj;                    // [hidden, heads * head_dim], row-parallel
  // [hidden], replicated: the MLP's input norm (Megatron's pre_mlp_layernorm; Hugging Face's
  // post_attention_layernorm, Gemma 2's pre_feedforward_layernorm).
  Tensor pre_mlp_layernorm;
  // [hidden], replicated: the biases of StableLM's LayerNorms (ModelConfig::norm_biases), undefined
  // otherwise.
  Tensor input_layernorm_bias, pre_mlp_layernorm_bias;
  Tensor gate_proj, up_proj;        // [intermediate, hidden], column-parallel (no gate: GPT-NeoX's plain MLP)
  Tensor down_proj;                 // [hidden, intermediate], row-parallel
  // GPT-NeoX's and Llama's mlp_bias biases (ModelConfig::o_bias, mlp_bias), undefined otherwise,
  // float32 only: o_proj's and down_proj's [hidden] replicated (added once, after their reduction),
  // gate_proj's (a gated MLP's) and up_proj's [intermediate] column-parallel.
  Tensor o_bias, gate_bias, up_bias, down_bias;
  // [heads * head_dim], column-parallel (split as the rows of their matrices): Qwen2's biases
  // (ModelConfig::qkv_bias), undefined otherwise. Float32 only: the products' epilogue reads them.
  Tensor q_bias, k_bias, v_bias;
  // DeepSeek-V3's latent attention (ModelConfig::latent_attention; model/latent_attention.h), undefined
  // otherwise: q_a_proj [q_lora_rank, hidden] and its norm's weight q_a_norm [q_lora_rank], replicated -- q_proj
  // then being q_b_proj [heads * head_dim, q_lora_rank] (none where q_lora_rank is 0: q_proj reads the layer's
  // input); kv_a_proj [kv_lora_rank + rotary_dim, hidden] (kv_a_proj_with_mqa) and kv_a_norm [kv_lora_rank],
  // replicated; kv_b_proj [heads * (qk_nope_head_dim + v_head_dim), kv_lora_rank], column-parallel by heads.
  // k_proj and v_proj are then undefined, and o_proj is [hidden, heads * v_head_dim].
  Tensor q_a_proj, q_a_norm, kv_a_proj, kv_a_norm, kv_b_proj;
  // [head_dim], replicated: Qwen3's RMSNorm weights of every query and key head
  // (ModelConfig::qk_norm), undefined otherwise.
  Tensor q_norm, k_norm;
  // [hidden], replicated: Gemma 2's norms of the attention's and the MLP's outputs before their
  // residual adds (ModelConfig::sandwich_norms; Hugging Face's post_attention_layernorm and
  // post_feedforward_layernorm), undefined otherwise.
  Tensor attn_output_norm, mlp_output_norm;
  // A layer of experts (ModelConfig::moe_layer: Mixtral's every layer, GLM-4.5's after its dense
  // ones): the router [experts, hidden], replicated, and each expert's projections, split over TP as
  // the dense MLP's are; gate_proj, up_proj and down_proj are then undefined (and in a dense layer
  // these). In the adapters' weights (ModelWeights::adapters) an expert holds
  // the LoRA adapters of its projections instead (`lora`, indexed by expert_lora), where the adapters
  // target the MLP's projections, and its matrices are undefined.
  struct Expert {
    Tensor gate_proj, up_proj, down_proj;
    std::array<LoraFactors, 3> lora{};
  };
  Tensor router;
  // GLM-4.5's correction bias: [experts], replicated (ModelConfig::router_sigmoid), undefined
  // otherwise. A buffer of the files kept among the parameters, which no gradient reaches: no
  // product reads it, so its gradient stays zero and AdamW (no decay on 1-D tensors) leaves it as
  // read -- train::update_router_biases alone moves it (ModelConfig::router_bias_update_rate).
  Tensor router_bias;
  std::vector<Expert> experts;
  // Qwen2-MoE's shared expert (ModelConfig::shared_expert), split as the experts, and its gate
  // [1, hidden], replicated (GLM-4.5's has none: ModelConfig::shared_expert_gated); undefined otherwise.
  Expert shared_expert;
  Tensor shared_expert_gate;
  // LoRA adapters of the projections, by LoraTarget (model/lora.h): defined in the adapters'
  // weights (ModelWeights::adapters) for the targeted projections, undefined elsewhere -- the
  // adapters' weights hold nothing else, and the base model's no adapters.
  std::array<LoraFactors, kLoraTargets> lora;
  float lora_scale = 0.0f;  // alpha / rank, in the adapters' weights
  // bf16 copies of the matrices, for mixed precision (ModelWeights::enable_bf16); undefined
  // otherwise.
  struct Bf16 {
    Tensor q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj;
    Tensor q_a_proj, kv_a_proj, kv_b_proj;
    std::array<LoraFactors, kLoraTargets> lora;
    Tensor router;
    std::vector<Expert> experts;
    Expert shared_expert;
    Tensor shared_expert_gate;
  } bf16;
};

// How a model's values are held. Float32: every parameter in float32 (the master weights an optimizer
// updates), with a bf16 copy beside them under mixed precision (ModelWeights::enable_bf16).
// FrozenBf16: a model no optimizer updates -- SPIN's reference, LoRA's base, generation's model --
// under mixed precision, held as its forward reads it: the products' matrices in bf16 alone (2 bytes
// a value instead of 4 + 2), the float32-read tensors (read_in_float32: the embedding, which the lookup
// reads, the norms, biases) in float32 with their bf16 rounding beside them. Its forward computes
// exactly what a Float32 model's bf16 products compute. A matrix's LayerWeights field is then its
// bf16 tensor itself (the same as LayerWeights::bf16's), so that code reading it as float32 throws.
enum class WeightStorage { Float32, FrozenBf16 };

class ModelWeights {
 public:
  // All zeros: this rank's TP shard of the whole model (one pipeline stage).
  ModelWeights(const ModelConfig& config, const TpDims& dims)
      : ModelWeights(config, dims, StageLayers::whole(config.num_layers)) {}
  // All zeros: this rank's TP shard of the pipeline stage `stage`, on `device`. The flat
  // buffer's length is a multiple of `pad_multiple` (the distributed optimizer splits it evenly
  // over DP).
  ModelWeights(const ModelConfig& config, const TpDims& dims, const StageLayers& stage, std::int64_t pad_multiple = 1,
               Device device = Device::Cpu, WeightStorage storage = WeightStorage::Float32)
      : ModelWeights(config, dims, std::span(&stage, 1), pad_multiple, device, storage) {}
  // The same for a stage of several model chunks (interleaving: model::stage_chunks): their layers
  // one after another in `layers`, chunk c's from chunks[c].local, in one flat buffer.
  ModelWeights(const ModelConfig& config, const TpDims& dims, std::span<const StageLayers> chunks,
               std::int64_t pad_multiple = 1, Device device = Device::Cpu,
               WeightStorage storage = WeightStorage::Float32);
  // All zeros: LoRA adapters (model/lora.h) of the same shard of the model -- LayerWeights::lora
  // of the targeted projections, nothing else (no embedding, norms or head). The optimizer, the
  // gradient reductions and checkpoints take them as they take a model: one flat buffer.
  static ModelWeights adapters(const ModelConfig& config, const LoraConfig& lora, const TpDims& dims,
                               const StageLayers& stage, std::int64_t pad_multiple = 1, Device device = Device::Cpu) {
    return adapters(config, lora, dims, std::span(&stage, 1), pad_multiple, device);
  }
  static ModelWeights adapters(const ModelConfig& config, const LoraConfig& lora, const TpDims& dims,
                               std::span<const StageLayers> chunks, std::int64_t pad_multiple = 1,
                               Device device = Device::Cpu);
  ModelWeights(ModelWeights&&) = default;
  ModelWeights& operator=(ModelWeights&&) = default;

  Tensor embed_tokens;              // [vocab_rows, hidden], vocab-parallel; first stage only
  std::vector<LayerWeights> layers;  // this stage's layers, layers[0] = global layer stage.begin (chunk by chunk)
  Tensor norm;                      // [hidden], replicated; last stage only
  Tensor norm_bias;                 // [hidden], replicated: StableLM's; last stage only
  // [vocab_rows, hidden], vocab-parallel; last stage only. With tied embeddings it is the
  // embed_tokens tensor when one stage holds both, and otherwise a second copy of
  // "model.embed_tokens.weight" (not primary) kept equal by the embedding-group all-reduce.
  Tensor lm_head;
  Tensor lm_head_bias;  // [vocab_rows], vocab-parallel: Phi's (ModelConfig::lm_head_bias); last stage only

  // Every local parameter once (a tied lm_head held with embed_tokens is not listed twice), in
  // the model's order. FrozenBf16: the matrices' `local` are bf16 tensors.
  const std::vector<ShardedTensor>& sharded_state_dict() const { return params_; }
  // The float32 values: every parameter's (Float32), or the float32-read tensors' alone (FrozenBf16).
  const Tensor& flat() const { return storage_.buffer(); }
  bool frozen() const { return frozen_; }
  // The layout every representation shares (the Float32 flat buffer's, the bf16 buffer's): parameter
  // i of sharded_state_dict() at layout_offsets()[i], layout_numel() elements in all.
  const std::vector<std::int64_t>& layout_offsets() const { return layout_offsets_; }
  std::int64_t layout_numel() const { return frozen_ ? bf16_.numel() : flat().numel(); }
  // Every parameter's values in float32 in host memory, in the layout: as held, or (FrozenBf16) the
  // bf16 matrices widened. On the CPU path of a Float32 model, the live buffer itself.
  Tensor values_on_host() const;
  // Every parameter's values from `host` (float32, host memory, the layout -- of any padding), the
  // bf16 copy rounded from them (FrozenBf16: the matrices held as that rounding). `host` may be
  // values_on_host().
  void assign_values(const Tensor& host);

  void zero() { flat().zero_(); }
  Device device() const { return flat().device(); }
  // Where `param` (one of this object's parameters) starts in the flat buffer, in elements.
  std::int64_t offset_of(const Tensor& param) const { return param.f32() - flat().f32(); }
  // [begin, end) in the flat buffer covering every parameter of local layer `layer` (they are
  // laid out together, in the model's order).
  std::pair<std::int64_t, std::int64_t> layer_span(std::int64_t layer) const;
  // A copy of `other`, which has the same layout; the devices and the representations may differ
  // (the SPIN reference sync; weights read on the host and moved to the GPU). The bf16 copies too,
  // when both have them. Into FrozenBf16: the values rounded -- from a Float32 model with a bf16
  // copy, that copy (device to device); from a FrozenBf16 model as held. From FrozenBf16 into
  // Float32: the bf16 values widened (through the host).
  void copy_from(const ModelWeights& other);
  // What the forward reads, from a FrozenBf16 model of the same layout into this Float32 model with
  // a bf16 copy: the bf16 buffer and the float32-read tensors. The float32 matrices are left as they
  // were -- stale until the caller restores them and refreshes the copy (SpinTrainer's offloaded
  // reference: the policy's parked, the reference's bf16 values moved in, 2 bytes a value).
  void borrow_forward_values(const ModelWeights& frozen);

  // Mixed precision: a bf16 copy of every parameter (one more flat buffer, 2 bytes a value),
  // which the matrix products read (LayerWeights::bf16, lm_head_bf16) while these float32
  // values stay the master weights the optimizer updates. The copy is derived state: after
  // anything writes the float32 values (loading, an optimizer step), refresh_bf16 rounds them
  // again -- Optimizer::step, copy_from and init_random do it themselves. enable_bf16 makes the
  // copy from the current values, with `k`. FrozenBf16: the float32-read tensors' rounding alone
  // (their float32 values are the ones written; the matrices' bf16 values are the values).
  void enable_bf16(const kernels::Kernels& k);
  bool has_bf16() const { return bf16_.defined(); }
  const Tensor& flat_bf16() const { return bf16_; }  // the layout (Float32: flat()'s)
  void refresh_bf16(const kernels::Kernels& k);
  // The same through the host, for loaders that have no kernels at hand (one-off, at load).
  void refresh_bf16_on_host();
  Tensor lm_head_bf16;  // last stage, with enable_bf16
  // Normal(0, std) for matrices and biases and 1 for norms, each value keyed by (seed, parameter name,
  // global element index): the same global model for any TP / PP layout. Adapters start as LoRA
  // does whatever `std`: A uniform in +-1/sqrt(in), B zero.
  void init_random(std::uint64_t seed, float std);
  // Adapters: whether these are (ModelWeights::adapters), and their scale alpha / rank.
  bool is_adapters() const { return lora_.enabled(); }
  const LoraConfig& lora() const { return lora_; }
  // Adapters merged into `base` (this shard of the same model): W += scale B A for every adapted
  // projection, then base's bf16 copy refreshed (FrozenBf16: W = bf16(W + scale B A), the sum in
  // float32). Local: no communication.
  void merge_into(ModelWeights& base, const kernels::Kernels& k) const;

 private:
  Tensor bf16_view(const Tensor& param) const;  // param's place in bf16_
  // LayerWeights::bf16 and lm_head_bf16: the matrices' places in bf16_.
  void wire_bf16_views();
  // Where the last parameter ends in the layout (the padding after it excluded).
  std::int64_t values_end() const;
  // What a forward reads, from `from` (of this layout; one of the two FrozenBf16, the other with a bf16
  // copy): the bf16 buffer, and the float32-read tensors of the frozen one.
  void copy_forward_values(const ModelWeights& from);
  ModelWeights() = default;

  LoraConfig lora_;    // adapters: their configuration; rank 0 in a model's weights
  Workspace storage_;  // one allocation for every float32 value
  Tensor bf16_;        // bf16 values in the layout: the copy (enable_bf16), or FrozenBf16's own
  bool frozen_ = false;
  std::vector<ShardedTensor> params_;
  std::vector<std::int64_t> layout_offsets_;  // params_[i]'s offset in the layout
};

// What a mixed-precision forward reads in float32 rather than through a bf16 copy -- the embedding
// (the lookup), the norms' weights (Cohere's and StableLM's per-head ones [heads, head_dim] too) and
// biases, the router's correction bias: all but the products' matrices -- and FrozenBf16 therefore
// keeps in float32.
bool read_in_float32(const ShardedTensor& p);
// Whether parameter `name` is the matrix of a linear layer inside the decoder layers -- attention's
// projections (latent attention's too), the MLP's and every expert's -- and so not the embedding, the
// LM head, a norm, a bias or a router: what block-scaled FP8 checkpoints (DeepSeek-V3's, Kimi K2's,
// Qwen3's FP8 releases) hold in FP8.
bool is_layer_projection(const std::string& name);

// The parameters ModelWeights(config, dims, stage) holds, described without storage (`local`
// is empty): names, global shapes, splits and primary flags, for tools that place a model's
// tensors without allocating it (checkpoint conversion).
std::vector<ShardedTensor> parameter_layout(const ModelConfig& config, const TpDims& dims,
                                            const StageLayers& stage);
// Their local shapes on this rank, in the same order (a vocabulary shard's padding rows included): what
// ModelWeights carves.
std::vector<Shape> parameter_local_shapes(const ModelConfig& config, const TpDims& dims,
                                          std::span<const StageLayers> chunks);
inline std::vector<Shape> parameter_local_shapes(const ModelConfig& config, const TpDims& dims,
                                                 const StageLayers& stage) {
  return parameter_local_shapes(config, dims, std::span(&stage, 1));
}
// Both, each parameter's description beside its local shape, from one walk of the model.
std::vector<std::pair<ShardedTensor, Shape>> parameter_specs(const ModelConfig& config, const TpDims& dims,
                                                             std::span<const StageLayers> chunks);
inline std::vector<std::pair<ShardedTensor, Shape>> parameter_specs(const ModelConfig& config, const TpDims& dims,
                                                                    const StageLayers& stage) {
  return parameter_specs(config, dims, std::span(&stage, 1));
}
// The same for the LoRA adapters of that shard ("model.layers.<l>.self_attn.q_proj.lora_A.weight",
// PEFT's names without its "base_model.model." prefix).
// In a mixture of experts an MLP target adapts every expert's projection (and the shared expert's):
// "model.layers.<l>.mlp.experts.<e>.gate_proj.lora_A.weight".
std::vector<ShardedTensor> adapter_layout(const ModelConfig& config, const LoraConfig& lora, const TpDims& dims,
                                          std::span<const StageLayers> chunks);
inline std::vector<ShardedTensor> adapter_layout(const ModelConfig& config, const LoraConfig& lora, const TpDims& dims,
                                                 const StageLayers& stage) {
  return adapter_layout(config, lora, dims, std::span(&stage, 1));
}

// Where these parameters sit in the model's Hugging Face files: under hf_weight_prefix, and for
// Phi-3 (ModelConfig::fused_projections) q/k/v as the row blocks of qkv_proj, gate/up of
// gate_up_proj (GLM's gate/up alike), and other families' module names (ModelConfig::hf_names).
HfLayout hf_layout(const ModelConfig& config);
// Projection t's module within a layer as spin's tensors name it ("self_attn.q_proj"; latent attention's
// "self_attn.q_b_proj").
std::string lora_module(const ModelConfig& config, LoraTarget t);
// The modules target t adapts within a layer, as spin's tensors and PEFT name them: the
// projection's (lora_module, peft_module), or in a layer of experts an MLP target's of every
// expert and the shared expert ("mlp.experts.3.gate_proj"; Mixtral's files
// "block_sparse_moe.experts.3.w1").
struct LoraModule {
  std::string spin, peft;
};
std::vector<LoraModule> lora_modules(const ModelConfig& config, LoraTarget t, std::int64_t layer);
// The module PEFT adapts for projection t: the same, or in Phi-3's files (hf_layout's fusions) the
// fused module that holds it ("self_attn.qkv_proj").
std::string peft_module(const ModelConfig& config, LoraTarget t);
// Where the LoRA adapters of `lora` sit in a PEFT adapter's files: under "base_model.model." and
// the model's prefix; for Phi-3, PEFT adapts the fused qkv_proj (gate_up_proj) with one pair, so
// q's, k's and v's adapters share its A and take their row blocks of its B -- GPT-NeoX's
// query_key_value likewise, its B's rows fused per head as the weight's.
HfLayout peft_layout(const ModelConfig& config, const LoraConfig& lora);

}  // namespace spin::model
