// DeepSeek-V3's multi-head latent attention (ModelConfig::latent_attention) under tensor parallelism:
// the part of a decoder layer from its input norm's output n1 to the q, k and v the attention reads, and
// from the attention's output to o_proj's input.
//
//   q          = q_b_proj(rmsnorm(q_a_proj(n1)))      (q_proj(n1) where q_lora_rank is 0)
//   c, k_rope  = kv_a_proj_with_mqa(n1)               (its first kv_lora_rank outputs, its last rotary_dim)
//   k_c, v     = kv_b_proj(rmsnorm(c))                (per head: qk_nope_head_dim, then v_head_dim)
//   k          = [k_c, rope(k_rope)]  per head -- one rotated key shared by every head
//   q          = [q_c, rope(q_r)]     per head
//
// Each head's query and key are head_dim = qk_nope_head_dim + rotary_dim wide; its value v_head_dim,
// held in the attention's v buffer padded with zeros to head_dim, so that every attention kernel runs
// unchanged -- the padding's output columns are zero and are dropped before o_proj (transformers pads
// the values so for flash attention too). The cost: the values' padding in the products (a third of v
// at DeepSeek-V3's 192 / 128). Generation caches the latent instead (latent_attention_cached: kv_b_proj
// absorbed into the queries and the outputs, as DeepSeek's inference runs it): one row of
// kv_lora_rank + rotary_dim values a token and layer, 576 at DeepSeek-V3's shapes, against 2 x 128 x 192
// for its heads' keys and values.
//
// Under TP the heads split as Megatron splits them: q_b_proj (q_proj) and kv_b_proj column-parallel by
// heads, o_proj row-parallel; q_a_proj, kv_a_proj and their norms are replicated and computed whole on
// every rank. In the backward each rank's heads give it a part of the latents' gradients (q's and c's
// normed, the rotated key's), which one all-reduce a layer sums ([rows, q_lora_rank + kv_lora_rank +
// rotary_dim] floats); from there every rank runs the replicated part's backward as one rank would --
// the weights' gradients whole and the same on each, no reduction of their own -- but its input
// gradient only over its share of the rows, which joins the column-parallel ones in the layer's TP
// reduction of d n1. (Each rank carrying its partial sums through the replicated part instead -- the
// backward is linear in them -- would need no reduction of the latents, but rounds each partial sum
// to bf16 on its own: TP would change bf16 results by its roundings.) Sequence parallelism changes
// nothing here: n1 arrives gathered.
//
// LoRA (model/lora.h) adapts any of the four projections as PEFT does: q_b_proj (LoraTarget::Q) and
// kv_b_proj (KvB) as column-parallel projections -- B's rows split with the heads, A whole, its
// gradient a partial sum reduced with the layer's others, their input gradients part of the latents'
// -- and q_a_proj (QA) and kv_a_proj_with_mqa (KvA) as replicated ones: both factors whole, their
// gradients from every row on every rank alike, their input gradients over the rank's share of the rows
// as their projections'. kv_a_proj_with_mqa's adapter serves its two products, one u, B's two row
// blocks. In generation's absorbed attention kv_b_proj's adapter adds its terms to the absorbed queries
// (q_c B_kc A) and the outputs (o_latent A^T B_vc^T) per head.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "core/workspace.h"
#include "model/context.h"
#include "model/tp_regions.h"
#include "model/weights.h"

namespace spin::model {

// RMSNorm's epsilon of q_a_layernorm and kv_a_layernorm: DeepseekV3RMSNorm's default, which
// DeepseekV3Attention does not set from rms_norm_eps.
inline constexpr float kLatentNormEps = 1e-6f;

// The buffers of one layer's latent attention for `rows` tokens: the ones at the activation size
// (float32, or bf16 in mixed precision) -- q_a_proj's output and its norm's, c and its norm's, the
// rotated key, kv_b_proj's output, the values without padding (o_proj's input), the queries' rotated
// part; for generation (`cached`) besides, the cached row [c, rotated key], the absorbed queries and the
// attention's output over the latent (latent_attention_cached) --, then the float32 ones (the two norms'
// 1/rms). Shapes of 0 for what a model has not.
struct LatentShapes {
  std::vector<Shape> act, f32;
};
LatentShapes latent_activation_shapes(const TpDims& d, const ModelConfig& c, std::int64_t rows, bool cached = false);
// The backward's float32 scratch: the latents' gradients the TP group sums (q's normed, c's normed,
// the rotated key's: one buffer), q's and c's before their norms, kv_b_proj's output's, the values',
// the queries' rotated part's, a frozen norm's weight gradient (unread).
std::vector<Shape> latent_grad_shapes(const TpDims& d, const ModelConfig& c, std::int64_t rows);

struct LatentActivations {
  // Each in the products' precision: float32, or bf16 alone in mixed precision (the other undefined).
  Tensor q_latent, q_normed, c_kv, c_normed, k_rope, kv, out, q_rope, cached_row, q_absorbed, out_latent;
  Tensor q_latent16, q_normed16, c_kv16, c_normed16, k_rope16, kv16, out16, q_rope16, cached_row16, q_absorbed16,
      out_latent16;
  Tensor rstd_q, rstd_c;
  void allocate(const TpDims& d, const ModelConfig& c, std::int64_t rows, Device device, bool mixed, bool cached);
  std::size_t bytes() const { return workspace_.bytes() + workspace_f32_.bytes(); }

 private:
  Workspace workspace_, workspace_f32_;
};

struct LatentGradScratch {
  Tensor d_latent;  // [rows, q_lora_rank + kv_lora_rank + rotary_dim]: the next three, in turn
  Tensor d_q_normed, d_c_normed, d_k_rope;
  Tensor d_q_latent, d_c_kv, d_kv, d_out, d_q_rope;
  Tensor frozen_norm;  // [max(q_lora_rank, kv_lora_rank)]: a frozen latent norm's weight gradient, unread
  void allocate(const TpDims& d, const ModelConfig& c, std::int64_t rows, Device device);
  std::size_t bytes() const { return workspace_.bytes(); }

 private:
  Workspace workspace_;
};

struct LayerActivations;
struct LayerGradScratch;

// From n1 (`in`) the attention's q, k and v (a.q, a.k, a.v, or in mixed precision their bf16: [rows,
// heads * head_dim] each, v zero-padded), RoPE applied with `rope` (null: none); `ad`: layer `layer`'s
// LoRA adapters (null: none).
void latent_attention_forward(const ModelContext& ctx, const BatchGeometry& b, std::int64_t layer,
                              const LayerWeights& w, const LayerWeights* ad, LayerActivations& a, const ColumnInput& in,
                              const RopeTable* rope);

// Generation (a KV cache: `cache`'s keys, capacity and rows; model/decoder_layer.h), attention absorbed into
// the latent, as DeepSeek's inference runs it: the cache holds each token's [c, rotated key] row
// (TpDims::latent_cache), every head's query becomes [q_c W_kc, q_r] -- W_kc its key-content rows of
// kv_b_proj -- over that row (one kv head, head_dim kv_lora_rank + rotary_dim, the scores' scale the
// model's), the values are the rows' c (the cache itself; the rotated key's columns of the output
// dropped) and each head's output is o_latent W_vc^T -- W_vc its value rows. The same scores and
// values as latent_attention_forward's, summed in another order. From n1 (`in`) into a.latent.out (out16).
struct KvCacheView;
void latent_attention_cached(const ModelContext& ctx, const BatchGeometry& b, std::int64_t layer, const LayerWeights& w,
                             const LayerWeights* ad, LayerActivations& a, const ColumnInput& in,
                             const KvCacheView& cache, const kernels::AttentionScores& scores, const RopeTable* rope);

// The attention's output [rows, heads * head_dim] (float32 attn or bf16 attn16) into o_proj's input
// a.out / a.out16 [rows, heads * v_head_dim].
void latent_attention_output(const ModelContext& ctx, const BatchGeometry& b, LatentActivations& a, const Tensor& attn,
                             const Tensor& attn16);
// Its backward: o_proj's input gradient s.d_out into the attention's output gradient d_attn, padded.
void latent_attention_output_backward(const ModelContext& ctx, const BatchGeometry& b, const LatentGradScratch& s,
                                      const Tensor& d_attn);

// From the attention's s.dq, s.dk, s.dv (float32, RoPE not undone; dq is overwritten): s.d_norm (= or,
// where `accumulate`, +=) this rank's part of the input gradient of n1 (b.rows rows), and g's gradients --
// the weights' (undefined ones skipped: frozen), or with `ad` its adapters' (a column-parallel one's whole
// factor into s.lora_replicated, as the decoder layer's).
void latent_attention_backward(const ModelContext& ctx, const BatchGeometry& b, std::int64_t layer,
                               const LayerWeights& w, LayerWeights& g, const LayerWeights* ad,
                               const LayerActivations& a, LayerGradScratch& s, const ColumnInput& in, bool accumulate,
                               const RopeTable* rope);

}  // namespace spin::model
