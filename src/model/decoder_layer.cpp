#include "model/decoder_layer.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "model/adapter_site.h"
#include "model/latent_attention.h"
#include "model/linear.h"
#include "model/qkv_transforms.h"
#include "model/tp_regions.h"

namespace spin::model {

namespace {

// Where a half's norm writes its output for the products: n1 / n2 (float32, or undefined beside
// their bf16), or without an input norm (OLMo 2) in float32 the stream itself, x_in / x_mid.
const Tensor& norm_output(const Tensor& normed, const Tensor& normed16, const Tensor& stream) {
  return normed.defined() || normed16.defined() ? normed : stream;
}

// RoPE on q and k in place (none in a NoPE layer: `rope` null), then causal attention into
// attn: over the batch's own rows, or with a cache, over the cached prefix too after the rows'
// keys and values are appended to it.
// Mixed precision: all of it on the bf16 tensors (the cache is then bf16 as well).
void self_attention_forward(const ModelContext& ctx, const BatchGeometry& b, LayerActivations& a,
                            const KvCacheView* cache, const kernels::AttentionScores& scores, const RopeTable* rope) {
  const auto& k = ctx.k;
  const TpDims& d = ctx.dims;
  const std::int64_t n = b.rows;
  const bool mixed = a.q_bf16.defined();
  const std::int32_t* rows = rope_rows(ctx, b, rope);
  require(cache == nullptr || cache->bf16 == mixed, "KV cache in ", cache && cache->bf16 ? "bf16" : "float32",
          " for a layer computing in ", mixed ? "bf16" : "float32");
  if (mixed) {
    std::uint16_t* q = a.q_bf16.bf16();
    std::uint16_t* key = a.k_bf16.bf16();
    const std::uint16_t* value = a.v_bf16.bf16();
    if (rope) {
      k.rope_qk_forward_bf16(q, key, rows, rope->cos(), rope->sin(), n, d.heads, d.kv_heads, d.head_dim,
                             rope->rotary_dim(), ctx.config.rope_pairs);
    }
    if (cache) {
      auto* keys = static_cast<std::uint16_t*>(cache->keys);
      auto* values = static_cast<std::uint16_t*>(cache->values);
      k.scatter_kv_rows_bf16(keys, values, key, value, cache->cache_rows, n, d.kv_width());
      k.cached_attention_forward_bf16(a.attn_bf16.bf16(), q, keys, values, b.cu_seqlens, cache->slots,
                                      cache->first_positions, b.num_seqs, cache->capacity, d.heads,
                                      d.kv_heads, d.head_dim, scores);
    } else {
      k.attention_forward_bf16(a.attn_bf16.bf16(), a.probs.f32(), q, key, value, b.cu_seqlens, b.num_seqs,
                               d.heads, d.kv_heads, d.head_dim, scores);
    }
    return;
  }
  if (rope) {
    k.rope_qk_forward(a.q.f32(), a.k.f32(), rows, rope->cos(), rope->sin(), n, d.heads, d.kv_heads, d.head_dim,
                      rope->rotary_dim(), ctx.config.rope_pairs);
  }
  if (cache) {
    auto* keys = static_cast<float*>(cache->keys);
    auto* values = static_cast<float*>(cache->values);
    k.scatter_kv_rows(keys, values, a.k.f32(), a.v.f32(), cache->cache_rows, n, d.kv_width());
    k.cached_attention_forward(a.attn.f32(), a.q.f32(), keys, values, b.cu_seqlens, cache->slots,
                               cache->first_positions, b.num_seqs, cache->capacity, d.heads, d.kv_heads,
                               d.head_dim, scores);
  } else {
    k.attention_forward(a.attn.f32(), a.probs.f32(), a.q.f32(), a.k.f32(), a.v.f32(), b.cu_seqlens, b.num_seqs,
                        d.heads, d.kv_heads, d.head_dim, scores);
  }
}

// Gemma 2's norm of a half's output (raw: o_proj's or down_proj's, reduced over TP) into `out`,
// before the residual add; the residual rows, as the stream's other norms.
void output_norm_forward(const ModelContext& ctx, const BatchGeometry& b, float* out, const Tensor& rstd,
                         const float* raw, const Tensor& w) {
  ctx.k.rmsnorm_forward(out, rstd.f32(), raw, w.f32(), b.residual_rows(), ctx.dims.hidden, ctx.config.rms_norm_eps,
                        ctx.config.norm_weight_offset);
}

// Its backward: from dx (d/d the norm's output, the residual stream's gradient), d/d raw into
// s.d_output, returned; dw += the weight gradient (under a split each rank's from its own rows,
// all-reduced over TP first).
float* output_norm_backward(const ModelContext& ctx, const BatchGeometry& b, LayerGradScratch& s, const float* dx,
                            const Tensor& dw, const Tensor& raw, const Tensor& w, const Tensor& rstd) {
  const auto& k = ctx.k;
  const std::int64_t h = ctx.dims.hidden;
  s.d_output.zero_();
  const Tensor& d_weight = b.split ? s.d_norm_weight : dw;
  if (b.split) d_weight.zero_();
  k.rmsnorm_backward(s.d_output.f32(), d_weight.f32(), dx, raw.f32(), w.f32(), rstd.f32(), b.residual_rows(), h,
                     ctx.config.norm_weight_offset);
  if (b.split) {
    ctx.tp.all_reduce(d_weight.f32(), static_cast<std::size_t>(h));
    k.add_inplace(dw.f32(), d_weight.f32(), h);
  }
  return s.d_output.f32();
}

// A row-parallel projection's bias (GPT-NeoX's o_proj and down_proj), added once to the reduced
// output's rows (b.residual_rows()); none where undefined.
void add_row_parallel_bias(const ModelContext& ctx, const BatchGeometry& b, float* out, const Tensor& bias) {
  if (bias.defined()) ctx.k.add_bias(out, bias.f32(), b.residual_rows(), ctx.dims.hidden);
}

// Their gradients (each of `grads` that is defined: a frozen or absent bias has none): the column
// sums of the output rows' gradient dy -- whole on every rank without a split (dy is the same on
// each), under one this rank's rows' part, all-reduced over TP through s.d_norm_weight's first row.
void row_parallel_bias_backward(const ModelContext& ctx, const BatchGeometry& b, LayerGradScratch& s, const float* dy,
                                std::initializer_list<const Tensor*> grads) {
  const std::int64_t h = ctx.dims.hidden;
  std::vector<float*> live;
  for (const Tensor* g : grads) {
    if (g->defined()) live.push_back(g->f32());
  }
  if (live.empty()) return;
  if (!b.split) {
    for (float* g : live) ctx.k.bias_backward(g, dy, b.residual_rows(), h);
    return;
  }
  const Tensor partial = s.d_norm_weight.view(0, {h});
  partial.zero_();
  ctx.k.bias_backward(partial.f32(), dy, b.residual_rows(), h);
  ctx.tp.all_reduce(partial.f32(), static_cast<std::size_t>(h));
  for (float* g : live) ctx.k.add_inplace(g, partial.f32(), h);
}

// Granite: a half's output (reduced over TP, in out) times residual_multiplier before the residual add.
void scale_branch_output(const ModelContext& ctx, const BatchGeometry& b, float* out) {
  const float m = ctx.config.residual_multiplier;
  if (m != 1.0f) ctx.k.scale(out, out, m, b.residual_rows() * ctx.dims.hidden);
}

// Its backward: the branch's gradient, residual_multiplier dx in s.d_output (dx itself without one).
float* branch_grad(const ModelContext& ctx, const BatchGeometry& b, LayerGradScratch& s, float* dx) {
  const float m = ctx.config.residual_multiplier;
  if (m == 1.0f) return dx;
  ctx.k.scale(s.d_output.f32(), dx, m, b.residual_rows() * ctx.dims.hidden);
  return s.d_output.f32();
}

// attention_forward's backward: dq, dk (RoPE undone on both) and dv from d_attn.
void self_attention_backward(const ModelContext& ctx, const BatchGeometry& b, const LayerActivations& a,
                             LayerGradScratch& s, const kernels::AttentionScores& scores, const RopeTable* rope) {
  const auto& k = ctx.k;
  const TpDims& d = ctx.dims;
  const std::int32_t* rows = rope_rows(ctx, b, rope);
  if (a.q_bf16.defined()) {
    k.attention_backward_bf16(s.dq.f32(), s.dk.f32(), s.dv.f32(), s.d_attn.f32(), a.q_bf16.bf16(),
                              a.k_bf16.bf16(), a.v_bf16.bf16(), a.attn_bf16.bf16(), a.probs.f32(), b.cu_seqlens,
                              b.num_seqs, d.heads, d.kv_heads, d.head_dim, scores);
  } else {
    k.attention_backward(s.dq.f32(), s.dk.f32(), s.dv.f32(), s.d_attn.f32(), a.q.f32(), a.k.f32(), a.v.f32(),
                         a.probs.f32(), b.cu_seqlens, b.num_seqs, d.heads, d.kv_heads, d.head_dim,
                         scores);
  }
  if (rope) {
    k.rope_backward(s.dq.f32(), rows, rope->cos(), rope->sin(), b.rows, d.heads, d.head_dim, rope->rotary_dim(),
                    ctx.config.rope_pairs);
    k.rope_backward(s.dk.f32(), rows, rope->cos(), rope->sin(), b.rows, d.kv_heads, d.head_dim, rope->rotary_dim(),
                    ctx.config.rope_pairs);
  }
}

// Whether `adapters` adapt projection t.
bool adapts(const LayerWeights* adapters, LoraTarget t) {
  return adapters != nullptr && adapters->lora[static_cast<std::size_t>(t)].a.defined();
}

// Adapter t of a dense projection over the layer's n rows, its input `in` columns wide (a
// row-parallel adapter's input is this rank's columns of the whole: its mask's offset).
AdapterSite adapter_site(const ModelContext& ctx, const BatchGeometry& b, std::int64_t layer,
                         const LayerWeights& adapters, LoraTarget t, const LayerActivations& a, std::int64_t in) {
  const auto ti = static_cast<std::size_t>(t);
  AdapterSite site{adapters.lora[ti], adapters.bf16.lora[ti], adapters.lora_scale, a.lora_u[ti], b.dropout, {}};
  if (b.dropout != nullptr) {
    site.mask = b.dropout->mask(layer, static_cast<int>(t), lora_row_parallel(t) ? ctx.tp.rank() * in : 0);
  }
  return site;
}

// Adds adapter t's term to its projection's output (float32 y, or bf16 y16 in place), keeping u.
void adapter_forward(const ModelContext& ctx, const BatchGeometry& b, std::int64_t layer, const LayerWeights* adapters,
                     LoraTarget t, LayerActivations& a, const Tensor& x, const Tensor& x16, float* y, const Tensor& y16,
                     std::int64_t n, std::int64_t in, std::int64_t out) {
  if (!adapts(adapters, t)) return;
  adapter_site_forward(ctx, adapter_site(ctx, b, layer, *adapters, t, a, in), a.lora_u32, x, x16, y,
                       y16.defined() ? y16.bf16() : nullptr, n, in, out);
}

// linear_forward_into and the adapter's term.
void adapted_forward_into(const ModelContext& ctx, const BatchGeometry& b, std::int64_t layer,
                          const LayerWeights* adapters, LoraTarget t, LayerActivations& a, const Tensor& y,
                          const Tensor& y16, const ColumnInput& in, const Tensor& w, const Tensor& w16,
                          const Tensor& bias, std::int64_t n, std::int64_t width) {
  const std::int64_t h = ctx.dims.hidden;
  linear_forward_into(ctx, y, y16, in.x, in.x16, w, w16, bias, n, h, width);
  adapter_forward(ctx, b, layer, adapters, t, a, in.x, in.x16, f32_or_null(y), y16, n, h, width);
}

// Adapter t's gradients from its projection's output gradient dy, right after the projection's
// own backward (whose bf16(dy) it reuses in mixed precision); dx += its input gradient (under
// dropout through the mask: the float32 scratch holds it first). A replicated factor's gradient
// goes to s.lora_replicated when the TP group has several ranks.
void adapter_backward(const ModelContext& ctx, const BatchGeometry& b, std::int64_t layer, const LayerWeights* adapters,
                      LoraTarget t, LayerWeights& g, const LayerActivations& a, LayerGradScratch& s, const float* dy,
                      const Tensor& x_in, const Tensor& x16_in, float* dx, std::int64_t n, std::int64_t in,
                      std::int64_t out) {
  if (!adapts(adapters, t)) return;
  const auto ti = static_cast<std::size_t>(t);
  const auto [da, db] = adapter_grads(g.lora[ti], t, s.lora_replicated, adapter_slot(t), ctx.tp.size() > 1);
  adapter_site_backward(ctx, adapter_site(ctx, b, layer, *adapters, t, a, in), da, db, dy, s.dy_bf16, x_in, x16_in,
                        s.lora_du, s.lora_du16, dx, n, in, out);
}

// The replicated factors' gradients (adapter_grads' partial sums) summed over TP and added: the
// layer's targets', then a mixture's experts' (those of experts split over several ranks). (A replicated projection's
// adapter -- latent attention's q_a_proj's, kv_a_proj_with_mqa's -- has its gradients whole on every rank already.)
void reduce_adapter_gradients(const ModelContext& ctx, LayerWeights& g, LayerGradScratch& s) {
  if (ctx.tp.size() == 1) return;
  const std::int64_t slot = s.lora_replicated.shape()[1];
  ctx.tp.all_reduce(s.lora_replicated.f32(), static_cast<std::size_t>(s.lora_replicated.numel()));
  const auto add = [&](const LoraFactors& grad, LoraTarget t, std::int64_t at) {
    if (!grad.a.defined() || lora_replicated(t)) return;
    const Tensor& whole = lora_row_parallel(t) ? grad.b : grad.a;
    ctx.k.add_inplace(whole.f32(), s.lora_replicated.f32() + at * slot, whole.numel());
  };
  for (int t = 0; t < kLoraTargets; ++t) {
    add(g.lora[static_cast<std::size_t>(t)], static_cast<LoraTarget>(t), adapter_slot(static_cast<LoraTarget>(t)));
  }
  // The experts' where they are split over several ranks (else whole on their rank: adapter_grads).
  const std::size_t experts = g.experts.size();
  for (std::size_t e = 0; e <= experts; ++e) {
    if (e < experts && ctx.dims.expert_tp == 1) continue;
    const LayerWeights::Expert& grads = e < experts ? g.experts[e] : g.shared_expert;
    for (const LoraTarget t : kLoraMlpTargets) {
      add(grads.lora[expert_lora(t)], t, expert_adapter_slot(ctx.config, static_cast<std::int64_t>(e), t));
    }
  }
}

// A dense MLP's act(gate) * up, or a plain MLP's act(up) (GPT-NeoX's: no gate), into a.act (a.act_bf16).
void mlp_activation_forward(const ModelContext& ctx, const BatchGeometry& b, std::int64_t layer, const LayerWeights& w,
                            const LayerWeights* ad, LayerActivations& a, const ColumnInput& in) {
  const auto& k = ctx.k;
  const std::int64_t n = b.rows, inter = ctx.dims.dense_intermediate;
  const bool gated = w.gate_proj.defined();
  if (gated) {
    adapted_forward_into(ctx, b, layer, ad, LoraTarget::Gate, a, a.gate, a.gate_bf16, in, w.gate_proj, w.bf16.gate_proj,
                         w.gate_bias, n, inter);
  }
  adapted_forward_into(ctx, b, layer, ad, LoraTarget::Up, a, a.up, a.up_bf16, in, w.up_proj, w.bf16.up_proj, w.up_bias,
                       n, inter);
  if (a.act_bf16.defined()) {
    const Tensor& g16 = gated ? a.gate_bf16 : a.up_bf16;
    k.glu_forward_bf16(a.act_bf16.bf16(), g16.bf16(), gated ? a.up_bf16.bf16() : nullptr, n * inter,
                       ctx.config.activation);
  } else {
    const Tensor& g = gated ? a.gate : a.up;
    k.glu_forward(a.act.f32(), g.f32(), gated ? a.up.f32() : nullptr, n * inter, ctx.config.activation);
  }
}

// Its backward from d_down (d/d down_proj's output): the weights' gradients, and s.d_norm = d/d the
// MLP's input `in`.
void mlp_backward(const ModelContext& ctx, const BatchGeometry& b, std::int64_t layer, const LayerWeights& w,
                  LayerWeights& g, const LayerWeights* ad, const LayerActivations& a, LayerGradScratch& s,
                  const float* d_down, const ColumnInput& in) {
  const auto& k = ctx.k;
  const TpDims& d = ctx.dims;
  const std::int64_t n = b.rows, h = d.hidden, inter = d.dense_intermediate;
  linear_backward(ctx, s.d_act.f32(), f32_or_null(g.down_proj), d_down, s.dy_bf16, a.act, a.act_bf16, w.down_proj,
                  w.bf16.down_proj, n, inter, h, false);
  adapter_backward(ctx, b, layer, ad, LoraTarget::Down, g, a, s, d_down, a.act, a.act_bf16, s.d_act.f32(), n, inter, h);
  // d gate and d up (a plain MLP: d up alone, through act).
  const bool gated = w.gate_proj.defined();
  const std::int64_t m = n * inter;
  if (a.act_bf16.defined()) {
    const Tensor& g16 = gated ? a.gate_bf16 : a.up_bf16;
    k.glu_backward_bf16(gated ? s.d_gate.f32() : s.d_up.f32(), gated ? s.d_up.f32() : nullptr, s.d_act.f32(),
                        g16.bf16(), gated ? a.up_bf16.bf16() : nullptr, m, ctx.config.activation);
  } else {
    const Tensor& g32 = gated ? a.gate : a.up;
    k.glu_backward(gated ? s.d_gate.f32() : s.d_up.f32(), gated ? s.d_up.f32() : nullptr, s.d_act.f32(), g32.f32(),
                   gated ? a.up.f32() : nullptr, m, ctx.config.activation);
  }
  if (gated) {
    bias_backward(ctx, g.gate_bias, s.d_gate.f32(), n, inter);
    linear_backward(ctx, s.d_norm.f32(), f32_or_null(g.gate_proj), s.d_gate.f32(), s.dy_bf16, in.x, in.x16, w.gate_proj,
                    w.bf16.gate_proj, n, h, inter, false);
    adapter_backward(ctx, b, layer, ad, LoraTarget::Gate, g, a, s, s.d_gate.f32(), in.x, in.x16, s.d_norm.f32(), n, h,
                     inter);
  }
  bias_backward(ctx, g.up_bias, s.d_up.f32(), n, inter);
  linear_backward(ctx, s.d_norm.f32(), f32_or_null(g.up_proj), s.d_up.f32(), s.dy_bf16, in.x, in.x16, w.up_proj,
                  w.bf16.up_proj, n, h, inter, gated);
  adapter_backward(ctx, b, layer, ad, LoraTarget::Up, g, a, s, s.d_up.f32(), in.x, in.x16, s.d_norm.f32(), n, h, inter);
}

}  // namespace

void decoder_layer_forward(const ModelContext& ctx, const LayerWeights& w, std::int64_t layer,
                           const BatchGeometry& b, LayerActivations& a, float* x_out,
                           const KvCacheView* cache, const LayerWeights* ad) {
  const auto& k = ctx.k;
  const TpDims& d = ctx.dims;
  const std::int64_t n = b.rows;
  const std::int64_t h = d.hidden;
  const std::int64_t residual = b.residual_rows() * h;

  // Attention half.
  const ColumnInput in1 =
      norm_into_column_parallel(ctx, b, norm_output(a.n1, a.n1_bf16, a.x_in), a.n1_bf16, a.rstd1.f32(), a.x_in.f32(),
                                {w.input_layernorm, w.input_layernorm_bias});
  // The q, k and v products -- into q_raw, k_raw (v_raw) where a family transforms them before
  // attention (qkv_transforms.h: Qwen3's and OLMo 2's norms, OLMo 1.7's clamp) -- then q, k, v.
  // Latent attention (DeepSeek-V3's) forms q, k and v its own way, RoPE included, and its values
  // without their padding are o_proj's input; in generation it attends over the cached latent.
  const bool latent = ctx.config.latent_attention();
  const kernels::AttentionScores scores = ctx.config.attention_scores(layer);
  if (latent && cache != nullptr) {
    latent_attention_cached(ctx, b, layer, w, ad, a, in1, *cache, scores, ctx.rope_for(layer));
  } else if (latent) {
    latent_attention_forward(ctx, b, layer, w, ad, a, in1, ctx.rope_for(layer));
    self_attention_forward(ctx, b, a, nullptr, scores, nullptr);
    latent_attention_output(ctx, b, a.latent, a.attn, a.attn_bf16);
  } else {
    const bool raw = transforms_qk(ctx, w), raw_v = transforms_v(ctx);
    adapted_forward_into(ctx, b, layer, ad, LoraTarget::Q, a, raw ? a.q_raw : a.q, raw ? a.q_raw_bf16 : a.q_bf16, in1,
                         w.q_proj, w.bf16.q_proj, w.q_bias, n, d.q_width());
    adapted_forward_into(ctx, b, layer, ad, LoraTarget::K, a, raw ? a.k_raw : a.k, raw ? a.k_raw_bf16 : a.k_bf16, in1,
                         w.k_proj, w.bf16.k_proj, w.k_bias, n, d.kv_width());
    adapted_forward_into(ctx, b, layer, ad, LoraTarget::V, a, raw_v ? a.v_raw : a.v, raw_v ? a.v_raw_bf16 : a.v_bf16,
                         in1, w.v_proj, w.bf16.v_proj, w.v_bias, n, d.kv_width());
    qkv_transforms_forward(ctx, w, a, n);
    self_attention_forward(ctx, b, a, cache, scores, ctx.rope_for(layer));
  }
  const Tensor& o_in = latent ? a.latent.out : a.attn;
  const Tensor& o_in16 = latent ? a.latent.out16 : a.attn_bf16;
  // o_proj's output: x_mid itself, or Gemma 2's before its norm. With a parallel residual both
  // halves' partial sums go to one buffer and are reduced once (GPT-NeoX's gpt_j_residual): x_out,
  // or x_mid where x_out is x_in (inference), which the sum is added to last.
  const bool sandwich = w.attn_output_norm.defined();
  const bool parallel = ctx.config.parallel_residual;
  float* branches = x_out != a.x_in.f32() ? x_out : a.x_mid.f32();
  float* attn_out = parallel ? branches : sandwich ? a.attn_out.f32() : a.x_mid.f32();
  linear_forward(ctx, row_parallel_partial(b, attn_out), o_in, o_in16, w.o_proj, w.bf16.o_proj, n, d.o_width(), h,
                 true);
  adapter_forward(ctx, b, layer, ad, LoraTarget::O, a, o_in, o_in16, row_parallel_partial(b, attn_out), Tensor(), n,
                  d.o_width(), h);
  if (!parallel) {
    reduce_row_parallel(ctx, b, attn_out);
    add_row_parallel_bias(ctx, b, attn_out, w.o_bias);
    if (sandwich) output_norm_forward(ctx, b, a.x_mid.f32(), a.rstd_attn_out, attn_out, w.attn_output_norm);
    scale_branch_output(ctx, b, a.x_mid.f32());
    k.add_inplace(a.x_mid.f32(), a.x_in.f32(), residual);
  }

  // MLP half. x_out may alias x_in, which is no longer read from here on. Its input: its own norm
  // of x_mid (of x_in with GPT-NeoX's parallel residual), or with Cohere's or StableLM's parallel
  // residual the attention's input (in1: under a split still gathered, nothing having used the
  // buffer since).
  const Tensor& mlp_stream = parallel ? a.x_in : a.x_mid;
  const ColumnInput in2 =
      ctx.config.mlp_input_norm()
          ? norm_into_column_parallel(ctx, b, norm_output(a.n2, a.n2_bf16, mlp_stream), a.n2_bf16, a.rstd2.f32(),
                                      mlp_stream.f32(), {w.pre_mlp_layernorm, w.pre_mlp_layernorm_bias})
          : in1;
  // A mixture of experts (never with a parallel residual: ModelConfig::from_json) runs whole below;
  // a dense MLP's activation first.
  const bool moe = w.router.defined();
  if (!moe) mlp_activation_forward(ctx, b, layer, w, ad, a, in2);
  if (parallel) {  // (no output norms or multiplier in those families: ModelConfig::from_json)
    linear_forward_accumulate(ctx, row_parallel_partial(b, branches), a.act, a.act_bf16, w.down_proj, w.bf16.down_proj,
                              n, d.dense_intermediate, h);
    adapter_forward(ctx, b, layer, ad, LoraTarget::Down, a, a.act, a.act_bf16, row_parallel_partial(b, branches),
                    Tensor(), n, d.dense_intermediate, h);
    reduce_row_parallel(ctx, b, branches);
    add_row_parallel_bias(ctx, b, branches, w.o_bias);
    add_row_parallel_bias(ctx, b, branches, w.down_bias);
    k.add_inplace(x_out, branches == x_out ? a.x_in.f32() : a.x_mid.f32(), residual);
    return;
  }
  float* mlp_out = sandwich ? a.mlp_out.f32() : x_out;
  if (moe) {
    moe_forward(ctx, b, layer, w, ad, in2, a, row_parallel_partial(b, mlp_out));
  } else {
    linear_forward(ctx, row_parallel_partial(b, mlp_out), a.act, a.act_bf16, w.down_proj, w.bf16.down_proj, n,
                   d.dense_intermediate, h, true);
    adapter_forward(ctx, b, layer, ad, LoraTarget::Down, a, a.act, a.act_bf16, row_parallel_partial(b, mlp_out),
                    Tensor(), n, d.dense_intermediate, h);
  }
  reduce_row_parallel(ctx, b, mlp_out);
  add_row_parallel_bias(ctx, b, mlp_out, w.down_bias);
  if (sandwich) output_norm_forward(ctx, b, x_out, a.rstd_mlp_out, mlp_out, w.mlp_output_norm);
  scale_branch_output(ctx, b, x_out);
  k.add_inplace(x_out, a.x_mid.f32(), residual);
}

void decoder_layer_backward(const ModelContext& ctx, const LayerWeights& w, LayerWeights& g, std::int64_t layer,
                            const BatchGeometry& b, const LayerActivations& a, LayerGradScratch& s, float* dx,
                            const LayerWeights* ad) {
  const TpDims& d = ctx.dims;
  const std::int64_t n = b.rows;
  const std::int64_t h = d.hidden;
  if (ad != nullptr && ctx.tp.size() > 1) s.lora_replicated.zero_();
  // A frozen norm's (LoRA's base) weight gradient goes to a scratch nothing reads.
  const auto norm_grad = [&](const Tensor& t) -> const Tensor& { return t.defined() ? t : s.frozen_norm; };
  // An input norm's gradients: the weight's as norm_grad, a frozen bias's none.
  const auto input_norm_grads = [&](const Tensor& weight, const Tensor& bias) -> NormParams {
    return {norm_grad(weight), bias};
  };

  // With a parallel residual the MLP's input is the attention's, and both halves' outputs join x_out
  // directly (no output norm or multiplier in those families): the output gradient and the
  // input both serve twice, gathered once under sequence parallelism.
  const bool parallel = ctx.config.parallel_residual;
  // Whether the MLP has a norm of its own (not with Cohere's or StableLM's parallel residual).
  const bool own_norm = ctx.config.mlp_input_norm();
  // GPT-NeoX's row-parallel biases: down_proj's gradient from d/d x_out; o_proj's with a parallel
  // residual the same sums (one reduction for both), else from d/d x_mid (below).
  if (parallel) {
    row_parallel_bias_backward(ctx, b, s, dx, {&g.down_bias, &g.o_bias});
  } else {
    row_parallel_bias_backward(ctx, b, s, dx, {&g.down_bias});
  }
  // MLP half: dx is d/d x_out, whose rows' gradient the down projection's output shares (Gemma 2:
  // through its output norm).
  const bool sandwich = w.mlp_output_norm.defined();
  const float* d_down = row_parallel_grad(
      ctx, b,
      sandwich ? output_norm_backward(ctx, b, s, dx, norm_grad(g.mlp_output_norm), a.mlp_out, w.mlp_output_norm,
                                      a.rstd_mlp_out)
               : branch_grad(ctx, b, s, dx));
  // The MLP's input (its own norm's output, or the attention's input norm's), and its gradient into s.d_norm.
  const Tensor& mlp_stream = parallel ? a.x_in : a.x_mid;
  const ColumnInput in2 = own_norm ? column_input(ctx, b, norm_output(a.n2, a.n2_bf16, mlp_stream), a.n2_bf16)
                                   : column_input(ctx, b, norm_output(a.n1, a.n1_bf16, a.x_in), a.n1_bf16);
  if (w.router.defined()) {
    moe_backward(ctx, b, layer, w, g, ad, in2, a, s, d_down, s.d_norm.f32());
  } else {
    mlp_backward(ctx, b, layer, w, g, ad, a, s, d_down, in2);
  }
  // The residual branch keeps dx; the MLP's norm adds its part: dx becomes d/d x_mid. With GPT-NeoX's
  // parallel residual that norm's part of d/d x_in joins dx once o_proj has read it (below). With
  // Cohere's or StableLM's dx is d/d x_mid already, and s.d_norm keeps the MLP's part of the input
  // norm's gradient, to which q, k and v add theirs.
  const auto mlp_norm_backward = [&] {
    column_parallel_norm_backward(ctx, b, s.d_norm, s.d_norm_weight, dx,
                                  input_norm_grads(g.pre_mlp_layernorm, g.pre_mlp_layernorm_bias), mlp_stream.f32(),
                                  {w.pre_mlp_layernorm, w.pre_mlp_layernorm_bias}, a.rstd2.f32());
  };
  if (!parallel) {
    mlp_norm_backward();
    row_parallel_bias_backward(ctx, b, s, dx, {&g.o_bias});
  }

  // Attention half.
  // (With a parallel residual the output gradient is the MLP's, still gathered: nothing wrote s.full since.)
  const float* d_o =
      parallel ? d_down
               : row_parallel_grad(ctx, b,
                                   sandwich ? output_norm_backward(ctx, b, s, dx, norm_grad(g.attn_output_norm),
                                                                   a.attn_out, w.attn_output_norm, a.rstd_attn_out)
                                            : branch_grad(ctx, b, s, dx));
  const bool latent = ctx.config.latent_attention();
  const Tensor& o_in = latent ? a.latent.out : a.attn;
  const Tensor& o_in16 = latent ? a.latent.out16 : a.attn_bf16;
  const Tensor& d_o_in = latent ? s.latent.d_out : s.d_attn;
  linear_backward(ctx, d_o_in.f32(), f32_or_null(g.o_proj), d_o, s.dy_bf16, o_in, o_in16, w.o_proj, w.bf16.o_proj, n,
                  d.o_width(), h, false);
  adapter_backward(ctx, b, layer, ad, LoraTarget::O, g, a, s, d_o, o_in, o_in16, d_o_in.f32(), n, d.o_width(), h);
  if (parallel && own_norm) mlp_norm_backward();  // d_o (dx itself without a split) read: dx may change
  if (latent) latent_attention_output_backward(ctx, b, s.latent, s.d_attn);
  self_attention_backward(ctx, b, a, s, ctx.config.attention_scores(layer), latent ? nullptr : ctx.rope_for(layer));
  // (With a shared norm in2 is in1, still gathered: nothing wrote the buffer since.)
  const bool shared = !own_norm;
  if (latent) {
    const ColumnInput in1 = shared ? in2 : column_input(ctx, b, norm_output(a.n1, a.n1_bf16, a.x_in), a.n1_bf16);
    latent_attention_backward(ctx, b, layer, w, g, ad, a, s, in1, shared, ctx.rope_for(layer));
    column_parallel_norm_backward(ctx, b, s.d_norm, s.d_norm_weight, dx,
                                  input_norm_grads(g.input_layernorm, g.input_layernorm_bias), a.x_in.f32(),
                                  {w.input_layernorm, w.input_layernorm_bias}, a.rstd1.f32());
    if (ad != nullptr) reduce_adapter_gradients(ctx, g, s);
    return;
  }
  qkv_transforms_backward(ctx, b, w, g, a, s);
  // The q and k products' output gradients: before the q and k norms or the clamp, where the model has them.
  const bool raw = transforms_qk(ctx, w);
  const float* dq = raw ? s.dq_raw.f32() : s.dq.f32();
  const float* dk = raw ? s.dk_raw.f32() : s.dk.f32();
  bias_backward(ctx, g.q_bias, dq, n, d.q_width());
  bias_backward(ctx, g.k_bias, dk, n, d.kv_width());
  bias_backward(ctx, g.v_bias, s.dv.f32(), n, d.kv_width());
  const ColumnInput in1 = shared ? in2 : column_input(ctx, b, norm_output(a.n1, a.n1_bf16, a.x_in), a.n1_bf16);
  linear_backward(ctx, s.d_norm.f32(), f32_or_null(g.q_proj), dq, s.dy_bf16, in1.x, in1.x16, w.q_proj, w.bf16.q_proj, n,
                  h, d.q_width(), shared);
  adapter_backward(ctx, b, layer, ad, LoraTarget::Q, g, a, s, dq, in1.x, in1.x16, s.d_norm.f32(), n, h, d.q_width());
  linear_backward(ctx, s.d_norm.f32(), f32_or_null(g.k_proj), dk, s.dy_bf16, in1.x, in1.x16,
                  w.k_proj, w.bf16.k_proj, n, h, d.kv_width(), true);
  adapter_backward(ctx, b, layer, ad, LoraTarget::K, g, a, s, dk, in1.x, in1.x16, s.d_norm.f32(), n, h, d.kv_width());
  linear_backward(ctx, s.d_norm.f32(), f32_or_null(g.v_proj), s.dv.f32(), s.dy_bf16, in1.x, in1.x16,
                  w.v_proj, w.bf16.v_proj, n, h, d.kv_width(), true);
  adapter_backward(ctx, b, layer, ad, LoraTarget::V, g, a, s, s.dv.f32(), in1.x, in1.x16, s.d_norm.f32(), n, h,
                   d.kv_width());
  column_parallel_norm_backward(ctx, b, s.d_norm, s.d_norm_weight, dx,
                                input_norm_grads(g.input_layernorm, g.input_layernorm_bias), a.x_in.f32(),
                                {w.input_layernorm, w.input_layernorm_bias}, a.rstd1.f32());
  if (ad != nullptr) reduce_adapter_gradients(ctx, g, s);
}

}  // namespace spin::model
