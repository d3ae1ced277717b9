#include "model/decoder_layer.h"

#include "parallel/tp_mappings.h"

namespace spin::model {

namespace p = spin::parallel;

void LayerActivations::allocate(const TpDims& d, std::int64_t rows, std::int64_t probs_size,
                                Device device) {
  const Shape hidden{rows, d.hidden}, per_row{rows}, q_shape{rows, d.q_width()},
      kv_shape{rows, d.kv_width()}, mlp{rows, d.intermediate};
  const auto t = workspace_.carve(device, {hidden, hidden, per_row, q_shape, kv_shape, kv_shape,
                                   {probs_size}, q_shape, hidden, hidden, per_row, mlp, mlp, mlp});
  x_in = t[0], n1 = t[1], rstd1 = t[2], q = t[3], k = t[4], v = t[5], probs = t[6], attn = t[7];
  x_mid = t[8], n2 = t[9], rstd2 = t[10], gate = t[11], up = t[12], act = t[13];
}

void LayerGradScratch::allocate(const TpDims& d, std::int64_t rows, Device device) {
  const Shape hidden{rows, d.hidden}, q_shape{rows, d.q_width()}, kv_shape{rows, d.kv_width()},
      mlp{rows, d.intermediate};
  const auto t = workspace_.carve(device, {hidden, hidden, q_shape, q_shape, kv_shape, kv_shape, mlp,
                                   mlp, mlp});
  d_residual = t[0], d_norm = t[1], d_attn = t[2], dq = t[3], dk = t[4], dv = t[5];
  d_act = t[6], d_gate = t[7], d_up = t[8];
}

void decoder_layer_forward(const ModelContext& ctx, const LayerWeights& w,
                           const BatchGeometry& b, LayerActivations& a, float* x_out,
                           const KvCacheView* cache) {
  const auto& k = ctx.k;
  const TpDims& d = ctx.dims;
  const std::int64_t n = b.rows;
  const std::int64_t h = d.hidden;
  const auto residual = static_cast<std::size_t>(n * h);

  // Attention half.
  k.rmsnorm_forward(a.n1.f32(), a.rstd1.f32(), a.x_in.f32(), w.input_layernorm.f32(), n, h,
                    ctx.config.rms_norm_eps);
  p::copy_to_tp_region_forward(ctx.tp, a.n1.f32(), residual);
  k.linear_forward(a.q.f32(), a.n1.f32(), w.q_proj.f32(), n, h, d.q_width());
  k.linear_forward(a.k.f32(), a.n1.f32(), w.k_proj.f32(), n, h, d.kv_width());
  k.linear_forward(a.v.f32(), a.n1.f32(), w.v_proj.f32(), n, h, d.kv_width());
  k.rope_forward(a.q.f32(), b.positions, ctx.rope.cos(), ctx.rope.sin(), n, d.heads, d.head_dim);
  k.rope_forward(a.k.f32(), b.positions, ctx.rope.cos(), ctx.rope.sin(), n, d.kv_heads,
                 d.head_dim);
  if (cache) {
    k.scatter_rows(cache->keys, a.k.f32(), cache->cache_rows, n, d.kv_width());
    k.scatter_rows(cache->values, a.v.f32(), cache->cache_rows, n, d.kv_width());
    k.cached_attention_forward(a.attn.f32(), a.q.f32(), cache->keys, cache->values, b.cu_seqlens,
                               cache->slots, cache->first_positions, b.num_seqs, cache->capacity,
                               d.heads, d.kv_heads, d.head_dim);
  } else {
    k.attention_forward(a.attn.f32(), a.probs.f32(), a.q.f32(), a.k.f32(), a.v.f32(),
                        b.cu_seqlens, b.num_seqs, d.heads, d.kv_heads, d.head_dim);
  }
  k.linear_forward(a.x_mid.f32(), a.attn.f32(), w.o_proj.f32(), n, d.q_width(), h);
  p::reduce_from_tp_region_forward(ctx.tp, a.x_mid.f32(), residual);
  k.add_inplace(a.x_mid.f32(), a.x_in.f32(), n * h);

  // MLP half. x_out may alias x_in, which is no longer read from here on.
  k.rmsnorm_forward(a.n2.f32(), a.rstd2.f32(), a.x_mid.f32(), w.post_attention_layernorm.f32(),
                    n, h, ctx.config.rms_norm_eps);
  p::copy_to_tp_region_forward(ctx.tp, a.n2.f32(), residual);
  k.linear_forward(a.gate.f32(), a.n2.f32(), w.gate_proj.f32(), n, h, d.intermediate);
  k.linear_forward(a.up.f32(), a.n2.f32(), w.up_proj.f32(), n, h, d.intermediate);
  k.swiglu_forward(a.act.f32(), a.gate.f32(), a.up.f32(), n * d.intermediate);
  k.linear_forward(x_out, a.act.f32(), w.down_proj.f32(), n, d.intermediate, h);
  p::reduce_from_tp_region_forward(ctx.tp, x_out, residual);
  k.add_inplace(x_out, a.x_mid.f32(), n * h);
}

void decoder_layer_backward(const ModelContext& ctx, const LayerWeights& w, LayerWeights& g,
                            const BatchGeometry& b, const LayerActivations& a,
                            LayerGradScratch& s, float* dx) {
  const auto& k = ctx.k;
  const TpDims& d = ctx.dims;
  const std::int64_t n = b.rows;
  const std::int64_t h = d.hidden;
  const auto residual = static_cast<std::size_t>(n * h);

  // MLP half: dx is d/d x_out = d/d(down_proj output) (reduce_from's backward is identity).
  p::reduce_from_tp_region_backward(ctx.tp, dx, residual);
  k.linear_backward(s.d_act.f32(), g.down_proj.f32(), dx, a.act.f32(), w.down_proj.f32(), n,
                    d.intermediate, h, false);
  k.swiglu_backward(s.d_gate.f32(), s.d_up.f32(), s.d_act.f32(), a.gate.f32(), a.up.f32(),
                    n * d.intermediate);
  k.linear_backward(s.d_norm.f32(), g.gate_proj.f32(), s.d_gate.f32(), a.n2.f32(),
                    w.gate_proj.f32(), n, h, d.intermediate, false);
  k.linear_backward(s.d_norm.f32(), g.up_proj.f32(), s.d_up.f32(), a.n2.f32(), w.up_proj.f32(),
                    n, h, d.intermediate, true);
  p::copy_to_tp_region_backward(ctx.tp, s.d_norm.f32(), residual);
  // The residual branch keeps dx; the norm adds its part: dx becomes d/d x_mid.
  k.rmsnorm_backward(dx, g.post_attention_layernorm.f32(), s.d_norm.f32(), a.x_mid.f32(),
                     w.post_attention_layernorm.f32(), a.rstd2.f32(), n, h);

  // Attention half.
  p::reduce_from_tp_region_backward(ctx.tp, dx, residual);
  k.linear_backward(s.d_attn.f32(), g.o_proj.f32(), dx, a.attn.f32(), w.o_proj.f32(), n,
                    d.q_width(), h, false);
  k.attention_backward(s.dq.f32(), s.dk.f32(), s.dv.f32(), s.d_attn.f32(), a.q.f32(), a.k.f32(),
                       a.v.f32(), a.probs.f32(), b.cu_seqlens, b.num_seqs, d.heads, d.kv_heads,
                       d.head_dim);
  k.rope_backward(s.dq.f32(), b.positions, ctx.rope.cos(), ctx.rope.sin(), n, d.heads,
                  d.head_dim);
  k.rope_backward(s.dk.f32(), b.positions, ctx.rope.cos(), ctx.rope.sin(), n, d.kv_heads,
                  d.head_dim);
  k.linear_backward(s.d_norm.f32(), g.q_proj.f32(), s.dq.f32(), a.n1.f32(), w.q_proj.f32(), n, h,
                    d.q_width(), false);
  k.linear_backward(s.d_norm.f32(), g.k_proj.f32(), s.dk.f32(), a.n1.f32(), w.k_proj.f32(), n, h,
                    d.kv_width(), true);
  k.linear_backward(s.d_norm.f32(), g.v_proj.f32(), s.dv.f32(), a.n1.f32(), w.v_proj.f32(), n, h,
                    d.kv_width(), true);
  p::copy_to_tp_region_backward(ctx.tp, s.d_norm.f32(), residual);
  k.rmsnorm_backward(dx, g.input_layernorm.f32(), s.d_norm.f32(), a.x_in.f32(),
                     w.input_layernorm.f32(), a.rstd1.f32(), n, h);
}

}  // namespace spin::model
