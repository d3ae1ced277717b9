// One Llama decoder layer under tensor parallelism, as explicit forward and backward:
//   x_mid = x_in  + o_proj(attention(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1))),
//   x_out = x_mid + down_proj(silu(gate_proj(n2)) * up_proj(n2)),
// with n1 = rmsnorm(x_in), n2 = rmsnorm(x_mid) (with a parallel residual -- StableLM's
// use_parallel_residual -- the MLP reads n1 too: x_out = x_in + attention + MLP, one norm a layer,
// both halves' row-parallel partial sums reduced at once, and the backward sums both halves'
// gradients of n1 before the one norm's backward); Qwen2 adds
// biases to q/k/v_proj, Qwen3 an RMSNorm
// of every query and key head before RoPE (its weights replicated, their gradients, each rank's
// from its own heads, all-reduced over TP: [head_dim] each), Gemma 2 an RMSNorm of o_proj's and
// down_proj's outputs before they join the residual stream (on its rows, as the other norms).
// q/k/v and gate/up are column-parallel (input copied to the TP region: all-reduce of its
// gradient), o_proj and down_proj row-parallel
// (output reduced from the TP region: all-reduce forward). Two all-reduces of [rows, hidden]
// forward and two backward; nothing else crosses ranks. Under sequence parallelism
// (BatchGeometry::split) each all-reduce is a reduce-scatter and an all-gather around the
// residual stream's rows, and the norms' weight gradients, each rank's from its own rows, are
// all-reduced ([hidden] each). Mixtral's MLP is a mixture of experts (model/moe.h) in the same
// place, reduced the same way. The buffers' shapes: layer_buffers.cpp.
#pragma once

#include "core/tensor.h"
#include "core/workspace.h"
#include "model/context.h"
#include "model/latent_attention.h"
#include "model/moe.h"
#include "model/weights.h"

namespace spin::model {

// What the backward needs, per layer (or one shared set when only scoring).
struct LayerActivations {
  Tensor x_in, n1, rstd1, q, k, v, probs, attn;
  Tensor x_mid, n2, rstd2, gate, up, act;
  // Mixed precision: the bf16 inputs of the products (kept for the backward's weight
  // gradients), the MLP's gate and up (the gate/up products write them in bf16, SwiGLU reads
  // them) and the attention's q, k, v (written in bf16 by their products, RoPE and attention
  // read them so); undefined in float32. n1, q, k, v, attn, n2, gate, up and act then exist in
  // bf16 alone (undefined above): only products and bf16-reading kernels consume them.
  Tensor n1_bf16, q_bf16, k_bf16, v_bf16, attn_bf16, n2_bf16, gate_bf16, up_bf16, act_bf16;
  // Qwen3 (ModelConfig::qk_norm): the q and k products before the heads' RMSNorm -- float32, or
  // in mixed precision bf16 alone (q_raw_bf16, k_raw_bf16: as Hugging Face's bf16 model rounds
  // them) -- and its 1/rms per row and head; q and k (or q_bf16, k_bf16) then hold the normed heads.
  // OLMo 2 (ModelConfig::qk_norm_all_heads): the same but float32 in either precision (the
  // product's float32 output) and one 1/rms per row, across every head of the TP group; rstd_q
  // and rstd_k are then the halves of rstd_qk [2 rows] (their sums all-reduced at once).
  // OLMo 1.7 (ModelConfig::clip_qkv): the q, k and v products before their clamp, for its
  // gradient -- float32, or in mixed precision bf16 alone; q, k and v hold the clamped values.
  Tensor rstd_qk;
  Tensor q_raw, k_raw, q_raw_bf16, k_raw_bf16, rstd_q, rstd_k, v_raw, v_raw_bf16;
  // Gemma 2 (ModelConfig::sandwich_norms): o_proj's and down_proj's outputs before their norms
  // (the residual rows) and the norms' 1/rms.
  Tensor attn_out, rstd_attn_out, mlp_out, rstd_mlp_out;
  // LoRA (model/lora.h), by LoraTarget: each adapted projection's u = scale x A^T [rows, rank],
  // float32 or in mixed precision bf16 (computed through the float32 scratch lora_u32).
  std::array<Tensor, kLoraTargets> lora_u;
  Tensor lora_u32;
  // A mixture of experts (ModelConfig::moe): its routing and grouped rows; gate, up and act (and
  // their bf16) are then the experts' [rows k, intermediate] and a shared expert's rows (mlp_shape).
  MoeActivations moe;
  // DeepSeek-V3's latent attention (ModelConfig::latent_attention): its own buffers; q, k and v are then
  // [rows, heads * head_dim] each, v zero-padded (model/latent_attention.h).
  LatentActivations latent;

  // Points the tensors at buffers for batch `b`'s rows (the residual stream, the norms' outputs
  // and statistics for b.residual_rows(), the rest for b.rows) and `probs_size` attention
  // probabilities, reusing the previous allocation when it is large enough. `output_in_place`: the
  // forward will write the layer's output over x_in (decoder_layer_forward). `lora`: the adapters'
  // configuration when the forward runs with adapters (rank 0: none). `cached`: a generation's forward, over a
  // KV cache (latent attention's buffers for it).
  void allocate(const TpDims& d, const BatchGeometry& b, std::int64_t probs_size, Device device, bool mixed,
                const ModelConfig& config, bool output_in_place, const LoraConfig& lora = {}, bool cached = false);
  std::size_t bytes() const {
    return workspace_.bytes() + workspace_bf16_.bytes() + workspace_lora_.bytes() + workspace_lora32_.bytes() +
           workspace_moe_.bytes() + workspace_moe_index_.bytes() + workspace_moe_x_.bytes() + latent.bytes();
  }

 private:
  Workspace workspace_, workspace_bf16_, workspace_lora_, workspace_lora32_;
  Workspace workspace_moe_, workspace_moe_index_, workspace_moe_x_;
};

// One layer's KV cache and where a generation batch goes in it.
struct KvCacheView {
  void* keys = nullptr;    // [slots, capacity, kv_heads, head_dim], float or (bf16) uint16
  void* values = nullptr;
  bool bf16 = false;
  std::int64_t capacity = 0;  // the layer's rows a slot (KvCache::capacity)
  // Per batch row: slot * capacity + position mod capacity (on the kernels' device).
  const std::int64_t* cache_rows = nullptr;
  // Per sequence of the batch, host memory: its slot and the position of its first row.
  const std::int64_t* slots = nullptr;
  const std::int64_t* first_positions = nullptr;
};

// Reads acts.x_in, fills the rest of `acts`, writes the layer output to x_out (which may be
// acts.x_in itself when the activations are not kept for a backward, and allocated so):
// b.residual_rows() rows. With `cache`, the rows'
// keys and values are appended to it and attention runs over the cached prefix too
// (generation; acts.probs is then not used and nothing is kept for a backward). `layer` is the
// layer's global index (ModelConfig::attention_scores: whether it attends within a window).
// `adapters`: the layer's LoRA adapters (ModelWeights::adapters), added to its projections.
void decoder_layer_forward(const ModelContext& ctx, const LayerWeights& w, std::int64_t layer,
                           const BatchGeometry& batch, LayerActivations& acts, float* x_out,
                           const KvCacheView* cache = nullptr, const LayerWeights* adapters = nullptr);

// Sizes of the layer buffers for `rows` tokens, which spin plan counts too (train/memory_plan.cpp):
// an MLP buffer's shape (gate, up, act and their gradients: TpDims::mlp_values in a mixture), a
// mixture's logits (the router's, then a gated shared expert's gate's), and the widest product's output
// gradient (LayerGradScratch::dy_bf16: a mixture's experts' over its grouped rows, or its router's).
Shape mlp_shape(const TpDims& d, const ModelConfig& c, std::int64_t rows);
std::int64_t moe_logits(const ModelConfig& c, std::int64_t rows);
std::int64_t product_grad_values(const TpDims& d, const ModelConfig& c, std::int64_t rows);
// LoRA's: the rows of target t's saved u (LayerActivations::lora_u) -- a mixture's MLP targets'
// over this rank's grouped rows (TpDims::grouped_rows) and its shared expert's rows --, the slots of the
// replicated factors' gradients (LayerGradScratch::lora_replicated: the layer's targets, then a mixture's
// shared expert's three and its experts' three each where they are split: expert_adapter_slot) and each slot's floats
// (rank x the widest whole factor's input or output: hidden, or latent attention's q_lora_rank or kv_lora_rank), and
// the keys of a mixture's grouped rows under LoRA's dropout of its experts' adapters (MoeActivations::row_keys; 0
// without).
std::int64_t lora_u_rows(const TpDims& d, const ModelConfig& c, LoraTarget t, std::int64_t rows);
std::int64_t lora_replicated_slots(const TpDims& d, const ModelConfig& c, const LoraConfig& lora);
std::int64_t lora_replicated_slot(const ModelConfig& c, const LoraConfig& lora, const TpDims& d);
std::int64_t moe_dropout_keys(const TpDims& d, const ModelConfig& c, const LoraConfig& lora, std::int64_t rows);

// Scratch buffers of the backward, shared by all layers; d_residual carries d loss / d x
// between layers.
struct LayerGradScratch {
  Tensor d_residual, d_norm, d_attn, dq, dk, dv, d_act, d_gate, d_up;
  Tensor dy_bf16;  // mixed precision: bf16 of a product's output gradient (the widest)
  // Sequence parallelism: [2, hidden], a norm's weight and bias gradients from this rank's rows.
  Tensor d_norm_weight;
  // Qwen3: the gradients of q and k before the heads' RMSNorm, and [2, head_dim] for its weights'
  // gradients from this rank's heads (all-reduced over TP before they are added); OLMo 2: the
  // same gradients, and [2, rows] for the per-row sums of its norms' backward (q's, k's); OLMo 1.7:
  // the gradients of q and k before their clamp (v's is masked in place).
  Tensor dq_raw, dk_raw, d_head_norms;
  // Gemma 2: the gradient of o_proj's or down_proj's output, before its norm (the residual rows).
  Tensor d_output;
  // LoRA: d/d u of one adapter [rows, rank] (float32, and its bf16 in mixed precision); the
  // layer's replicated factors' gradients from this rank ([lora_replicated_slots, lora_replicated_slot]: a
  // column-parallel target's A, a row-parallel one's B), all-reduced over TP before they are
  // added; and where the frozen norms' weight gradients go, unused ([hidden]).
  Tensor lora_du, lora_du16, lora_replicated, frozen_norm;
  // A mixture of experts: its gradients of the outputs' rows, weights and logits; d_act, d_gate and
  // d_up are then the MLP buffers' size (mlp_shape).
  MoeGradScratch moe;
  LatentGradScratch latent;  // latent attention's (model/latent_attention.h)
  // Reuses memory like LayerActivations: d_residual and d_output for b.residual_rows(), d_norm for
  // b.gathered_rows(), the rest for b.rows. `lora` as LayerActivations::allocate's.
  void allocate(const TpDims& d, const BatchGeometry& b, Device device, bool mixed, const ModelConfig& config,
                const LoraConfig& lora = {});
  std::size_t bytes() const {
    return workspace_.bytes() + workspace_bf16_.bytes() + workspace_lora_.bytes() + workspace_lora16_.bytes() +
           workspace_moe_.bytes() + latent.bytes();
  }

 private:
  Workspace workspace_, workspace_bf16_, workspace_lora_, workspace_lora16_, workspace_moe_;
};

// On entry dx holds d loss / d x_out; on return d loss / d x_in. Weight gradients accumulate --
// into `grad`'s defined tensors: with `adapters` (the forward's), `grad` is the adapters'
// gradients and the base model is frozen (its matrices' gradients are not computed).
void decoder_layer_backward(const ModelContext& ctx, const LayerWeights& w, LayerWeights& grad, std::int64_t layer,
                            const BatchGeometry& batch, const LayerActivations& acts,
                            LayerGradScratch& scratch, float* dx, const LayerWeights* adapters = nullptr);

}  // namespace spin::model
