#include "model/qkv_transforms.h"

#include "model/linear.h"

namespace spin::model {

namespace {

// Qwen3's RMSNorm of each head (rows x heads rows of head_dim) from the product's output `raw`
// into the attention's input: float32, or in mixed precision bf16 from bf16 (raw16).
void head_norm_forward(const ModelContext& ctx, const Tensor& out, const Tensor& out16, const Tensor& rstd,
                       const Tensor& raw, const Tensor& raw16, const Tensor& w, std::int64_t rows) {
  const std::int64_t hd = ctx.dims.head_dim;
  if (out16.defined()) {
    ctx.k.rmsnorm_forward_bf16_in(out16.bf16(), rstd.f32(), raw16.bf16(), w.f32(), rows, hd, ctx.config.rms_norm_eps,
                                  ctx.config.norm_weight_offset);
  } else {
    ctx.k.rmsnorm_forward(out.f32(), rstd.f32(), raw.f32(), w.f32(), rows, hd, ctx.config.rms_norm_eps,
                                  ctx.config.norm_weight_offset);
  }
}

// Its backward: d_raw from d_out, the weights' gradients (this rank's heads) into the scratch,
// all-reduced over TP, then added to q_norm's and k_norm's.
void head_norms_backward(const ModelContext& ctx, const BatchGeometry& b, const LayerWeights& w, LayerWeights& g,
                         const LayerActivations& a, LayerGradScratch& s) {
  const auto& k = ctx.k;
  const TpDims& d = ctx.dims;
  const std::int64_t hd = d.head_dim;
  s.dq_raw.zero_();
  s.dk_raw.zero_();
  s.d_head_norms.zero_();
  float* dw = s.d_head_norms.f32();
  const auto norm_backward = [&](const Tensor& d_raw, float* d_weight, const Tensor& d_out, const Tensor& raw,
                                 const Tensor& raw16, const Tensor& weight, const Tensor& rstd, std::int64_t rows) {
    if (raw16.defined()) {
      k.rmsnorm_backward_bf16_in(d_raw.f32(), d_weight, d_out.f32(), raw16.bf16(), weight.f32(), rstd.f32(), rows, hd,
                                 ctx.config.norm_weight_offset);
    } else {
      k.rmsnorm_backward(d_raw.f32(), d_weight, d_out.f32(), raw.f32(), weight.f32(), rstd.f32(), rows, hd,
                                 ctx.config.norm_weight_offset);
    }
  };
  norm_backward(s.dq_raw, dw, s.dq, a.q_raw, a.q_raw_bf16, w.q_norm, a.rstd_q, b.rows * d.heads);
  norm_backward(s.dk_raw, dw + hd, s.dk, a.k_raw, a.k_raw_bf16, w.k_norm, a.rstd_k, b.rows * d.kv_heads);
  if (!g.q_norm.defined()) return;  // frozen (LoRA's base)
  ctx.tp.all_reduce(dw, static_cast<std::size_t>(2 * hd));
  k.add_inplace(g.q_norm.f32(), dw, hd);
  k.add_inplace(g.k_norm.f32(), dw + hd, hd);
}

// OLMo 2's q and k norms across every head of the TP group (rows of this rank's columns): each
// row's sums of squares of q and of k (into rstd_q and rstd_k, the halves of rstd_qk) summed over
// TP in one all-reduce, then each norm from its sums (rstd written over them) into q and k.
void all_heads_norms_forward(const ModelContext& ctx, const LayerWeights& w, LayerActivations& a, std::int64_t rows) {
  const auto& k = ctx.k;
  const TpDims& d = ctx.dims;
  k.row_dot(a.rstd_q.f32(), a.q_raw.f32(), a.q_raw.f32(), nullptr, rows, d.q_width());
  k.row_dot(a.rstd_k.f32(), a.k_raw.f32(), a.k_raw.f32(), nullptr, rows, d.kv_width());
  ctx.tp.all_reduce(a.rstd_qk.f32(), static_cast<std::size_t>(2 * rows));
  const auto norm = [&](const Tensor& out, const Tensor& out16, const Tensor& rstd, const Tensor& raw,
                        const Tensor& weight, std::int64_t width) {
    const std::int64_t total = width * ctx.tp.size();
    if (out16.defined()) {
      k.rmsnorm_forward_from_sums_bf16(out16.bf16(), rstd.f32(), raw.f32(), weight.f32(), rstd.f32(), rows, width,
                                       total, ctx.config.rms_norm_eps);
    } else {
      k.rmsnorm_forward_from_sums(out.f32(), rstd.f32(), raw.f32(), weight.f32(), rstd.f32(), rows, width, total,
                                  ctx.config.rms_norm_eps);
    }
  };
  norm(a.q, a.q_bf16, a.rstd_q, a.q_raw, w.q_norm, d.q_width());
  norm(a.k, a.k_bf16, a.rstd_k, a.k_raw, w.k_norm, d.kv_width());
}

// Its backward: d_raw from d_out for q and k, each row's sums of d_out w raw (q's, then k's)
// summed over TP in one all-reduce first; the weights' gradients (this rank's slice, complete:
// every row is here) into g's.
void all_heads_norms_backward(const ModelContext& ctx, const BatchGeometry& b, const LayerWeights& w, LayerWeights& g,
                              const LayerActivations& a, LayerGradScratch& s) {
  const auto& k = ctx.k;
  const TpDims& d = ctx.dims;
  float* dots = s.d_head_norms.f32();
  k.row_dot(dots, s.dq.f32(), a.q_raw.f32(), w.q_norm.f32(), b.rows, d.q_width());
  k.row_dot(dots + b.rows, s.dk.f32(), a.k_raw.f32(), w.k_norm.f32(), b.rows, d.kv_width());
  ctx.tp.all_reduce(dots, static_cast<std::size_t>(2 * b.rows));
  const auto norm_backward = [&](const Tensor& d_raw, const Tensor& d_weight, const Tensor& d_out, const Tensor& raw,
                                 const Tensor& weight, const Tensor& rstd, const float* sums, std::int64_t width) {
    d_raw.zero_();
    k.rmsnorm_backward_from_dots(d_raw.f32(), f32_or_null(d_weight), d_out.f32(), raw.f32(), weight.f32(), rstd.f32(),
                                 sums, b.rows, width, width * ctx.tp.size());
  };
  norm_backward(s.dq_raw, g.q_norm, s.dq, a.q_raw, w.q_norm, a.rstd_q, dots, d.q_width());
  norm_backward(s.dk_raw, g.k_norm, s.dk, a.k_raw, w.k_norm, a.rstd_k, dots + b.rows, d.kv_width());
}

// Command R+'s LayerNorm of each head with its own weight, from the product's float32 output `raw`
// (in either precision) into the attention's input; the weights' gradients complete on each rank
// (its heads' rows are all here), straight into g's.
void head_layernorms_forward(const ModelContext& ctx, const LayerWeights& w, LayerActivations& a, std::int64_t rows) {
  const TpDims& d = ctx.dims;
  const auto norm = [&](const Tensor& out, const Tensor& out16, const Tensor& rstd, const Tensor& raw,
                        const Tensor& weight, std::int64_t heads) {
    if (out16.defined()) {
      ctx.k.head_layernorm_forward_bf16(out16.bf16(), rstd.f32(), raw.f32(), weight.f32(), rows, heads, d.head_dim,
                                        ctx.config.rms_norm_eps);
    } else {
      ctx.k.head_layernorm_forward(out.f32(), rstd.f32(), raw.f32(), weight.f32(), rows, heads, d.head_dim,
                                   ctx.config.rms_norm_eps);
    }
  };
  norm(a.q, a.q_bf16, a.rstd_q, a.q_raw, w.q_norm, d.heads);
  norm(a.k, a.k_bf16, a.rstd_k, a.k_raw, w.k_norm, d.kv_heads);
}
void head_layernorms_backward(const ModelContext& ctx, const BatchGeometry& b, const LayerWeights& w, LayerWeights& g,
                              const LayerActivations& a, LayerGradScratch& s) {
  const TpDims& d = ctx.dims;
  const auto norm_backward = [&](const Tensor& d_raw, const Tensor& d_weight, const Tensor& d_out, const Tensor& raw,
                                 const Tensor& weight, const Tensor& rstd, std::int64_t heads) {
    d_raw.zero_();
    ctx.k.head_layernorm_backward(d_raw.f32(), f32_or_null(d_weight), d_out.f32(), raw.f32(), weight.f32(), rstd.f32(),
                                  b.rows, heads, d.head_dim);
  };
  norm_backward(s.dq_raw, g.q_norm, s.dq, a.q_raw, w.q_norm, a.rstd_q, d.heads);
  norm_backward(s.dk_raw, g.k_norm, s.dk, a.k_raw, w.k_norm, a.rstd_k, d.kv_heads);
}

// OLMo 1.7's clip_qkv: a product's output `raw` (float32, or bf16 raw16; kept for the backward)
// clamped into the attention's input, and the gradient back through the clamp (d_raw may be d_out).
void clip_forward(const ModelContext& ctx, const Tensor& out, const Tensor& out16, const Tensor& raw,
                  const Tensor& raw16, std::int64_t count) {
  if (out16.defined()) {
    ctx.k.clamp_bf16(out16.bf16(), raw16.bf16(), count, ctx.config.clip_qkv);
  } else {
    ctx.k.clamp(out.f32(), raw.f32(), count, ctx.config.clip_qkv);
  }
}
void clip_backward(const ModelContext& ctx, const Tensor& d_raw, const Tensor& d_out, const Tensor& raw,
                   const Tensor& raw16, std::int64_t count) {
  if (raw16.defined()) {
    ctx.k.clamp_backward_bf16_in(d_raw.f32(), d_out.f32(), raw16.bf16(), count, ctx.config.clip_qkv);
  } else {
    ctx.k.clamp_backward(d_raw.f32(), d_out.f32(), raw.f32(), count, ctx.config.clip_qkv);
  }
}

}  // namespace

bool transforms_qk(const ModelContext& ctx, const LayerWeights& w) {
  return w.q_norm.defined() || ctx.config.clip_qkv > 0;
}

bool transforms_v(const ModelContext& ctx) { return ctx.config.clip_qkv > 0; }

void qkv_transforms_forward(const ModelContext& ctx, const LayerWeights& w, LayerActivations& a, std::int64_t rows) {
  const TpDims& d = ctx.dims;
  if (w.q_norm.defined() && ctx.config.qk_norm_all_heads) {
    all_heads_norms_forward(ctx, w, a, rows);
  } else if (w.q_norm.defined() && ctx.config.qk_head_layernorm) {
    head_layernorms_forward(ctx, w, a, rows);
  } else if (w.q_norm.defined()) {
    head_norm_forward(ctx, a.q, a.q_bf16, a.rstd_q, a.q_raw, a.q_raw_bf16, w.q_norm, rows * d.heads);
    head_norm_forward(ctx, a.k, a.k_bf16, a.rstd_k, a.k_raw, a.k_raw_bf16, w.k_norm, rows * d.kv_heads);
  } else if (ctx.config.clip_qkv > 0) {
    clip_forward(ctx, a.q, a.q_bf16, a.q_raw, a.q_raw_bf16, rows * d.q_width());
    clip_forward(ctx, a.k, a.k_bf16, a.k_raw, a.k_raw_bf16, rows * d.kv_width());
  }
  if (transforms_v(ctx)) clip_forward(ctx, a.v, a.v_bf16, a.v_raw, a.v_raw_bf16, rows * d.kv_width());
}

void qkv_transforms_backward(const ModelContext& ctx, const BatchGeometry& b, const LayerWeights& w, LayerWeights& g,
                             const LayerActivations& a, LayerGradScratch& s) {
  const TpDims& d = ctx.dims;
  if (w.q_norm.defined() && ctx.config.qk_norm_all_heads) {
    all_heads_norms_backward(ctx, b, w, g, a, s);
  } else if (w.q_norm.defined() && ctx.config.qk_head_layernorm) {
    head_layernorms_backward(ctx, b, w, g, a, s);
  } else if (w.q_norm.defined()) {
    head_norms_backward(ctx, b, w, g, a, s);
  } else if (ctx.config.clip_qkv > 0) {
    clip_backward(ctx, s.dq_raw, s.dq, a.q_raw, a.q_raw_bf16, b.rows * d.q_width());
    clip_backward(ctx, s.dk_raw, s.dk, a.k_raw, a.k_raw_bf16, b.rows * d.kv_width());
  }
  if (transforms_v(ctx)) clip_backward(ctx, s.dv, s.dv, a.v_raw, a.v_raw_bf16, b.rows * d.kv_width());  // in place
}

}  // namespace spin::model
