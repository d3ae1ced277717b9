#include "model/latent_attention.h"

#include <algorithm>
#include <optional>

#include "core/error.h"
#include "model/adapter_site.h"
#include "model/decoder_layer.h"  // KvCacheView, LayerActivations, LayerGradScratch
#include "model/linear.h"

namespace spin::model {

namespace {

// The widths a rank's latent attention works with.
struct LatentDims {
  std::int64_t hidden, heads, head_dim, nope, rope, v, q_rank, kv_rank;
  std::int64_t kv_width() const { return heads * (nope + v); }  // kv_b_proj's output columns
};

LatentDims latent_dims(const TpDims& d, const ModelConfig& c) {
  return {d.hidden, d.heads, d.head_dim, c.qk_nope_head_dim, c.rotary_dim, c.v_head_dim, c.q_lora_rank, c.kv_lora_rank};
}

// Rows [first, first + count) of a [rows, in] weight (kv_a_proj_with_mqa's c rows, its k_rope rows).
Tensor weight_rows(const Tensor& w, std::int64_t first, std::int64_t count) {
  return w.defined() ? w.view(first * w.shape()[1], {count, w.shape()[1]}) : Tensor();
}

// Element size and base address of a buffer in the products' precision.
struct Bytes {
  char* p;
  std::int64_t size;
};
Bytes bytes_of(const Tensor& f32, const Tensor& bf16) {
  return bf16.defined() ? Bytes{static_cast<char*>(bf16.raw()), 2} : Bytes{static_cast<char*>(f32.raw()), 4};
}

// out = rmsnorm(x) over rows of `dim` (float32, or bf16 from bf16: the product's rounded output, as
// transformers' bf16 model norms it).
void latent_norm_forward(const ModelContext& ctx, const Tensor& out, const Tensor& out16, const Tensor& rstd,
                         const Tensor& x, const Tensor& x16, const Tensor& w, std::int64_t rows, std::int64_t dim) {
  if (out16.defined()) {
    ctx.k.rmsnorm_forward_bf16_in(out16.bf16(), rstd.f32(), x16.bf16(), w.f32(), rows, dim, kLatentNormEps, 0.0f);
  } else {
    ctx.k.rmsnorm_forward(out.f32(), rstd.f32(), x.f32(), w.f32(), rows, dim, kLatentNormEps, 0.0f);
  }
}

// Its backward: dx = (zeroed, then +=) from dout; dw += the weight's gradient.
void latent_norm_backward(const ModelContext& ctx, const Tensor& dx, float* dw, const Tensor& dout, const Tensor& x,
                          const Tensor& x16, const Tensor& w, const Tensor& rstd, std::int64_t rows, std::int64_t dim) {
  dx.zero_();
  if (x16.defined()) {
    ctx.k.rmsnorm_backward_bf16_in(dx.f32(), dw, dout.f32(), x16.bf16(), w.f32(), rstd.f32(), rows, dim, 0.0f);
  } else {
    ctx.k.rmsnorm_backward(dx.f32(), dw, dout.f32(), x.f32(), w.f32(), rstd.f32(), rows, dim, 0.0f);
  }
}

// RoPE over the last `rope` columns of each head of q ([rows, heads, head_dim], element size es) through
// the contiguous scratch [rows, heads, rope]: copied out, rotated (forward or backward: `undo`), copied back.
void rope_query_part(const ModelContext& ctx, const BatchGeometry& b, const LatentDims& l, char* q, std::int64_t es,
                     char* scratch, bool bf16, bool undo, const RopeTable& rope) {
  const auto& k = ctx.k;
  const std::int64_t n = b.rows, offset = l.nope * es;
  k.copy_2d(scratch, l.rope * es, q + offset, l.head_dim * es, l.rope * es, n * l.heads);
  const std::int32_t* rows = rope_rows(ctx, b, &rope);
  const auto pairs = ctx.config.rope_pairs;
  if (bf16) {
    k.rope_forward_bf16(reinterpret_cast<std::uint16_t*>(scratch), rows, rope.cos(), rope.sin(), n, l.heads, l.rope,
                        l.rope, pairs);
  } else if (undo) {
    k.rope_backward(reinterpret_cast<float*>(scratch), rows, rope.cos(), rope.sin(), n, l.heads, l.rope, l.rope, pairs);
  } else {
    k.rope_forward(reinterpret_cast<float*>(scratch), rows, rope.cos(), rope.sin(), n, l.heads, l.rope, l.rope, pairs);
  }
  k.copy_2d(q + offset, l.head_dim * es, scratch, l.rope * es, l.rope * es, n * l.heads);
}

// A latent projection's LoRA adapter over the layer's rows, or its B's rows [first, first + count) alone
// (kv_a_proj_with_mqa's two blocks, each its own product): the factors an AdapterSite reads by reference,
// held here so that they outlive it.
struct LatentAdapter {
  LoraFactors w, w16;
  float scale = 0.0f;
  Tensor u;
  const AdapterDropout* dropout = nullptr;
  kernels::Kernels::DropoutMask mask;
  AdapterSite site() const { return {w, w16, scale, u, dropout, mask}; }
};

// Adapter t of layer `layer` (its B's rows [first, first + count); count < 0: all), or none where `ad`
// does not adapt t. Its input is whole on every rank (column-parallel or replicated): the mask's columns
// from 0.
std::optional<LatentAdapter> latent_adapter(const BatchGeometry& b, std::int64_t layer, const LayerWeights* ad,
                                            const LayerActivations& a, LoraTarget t, std::int64_t first = 0,
                                            std::int64_t count = -1) {
  const auto ti = static_cast<std::size_t>(t);
  if (ad == nullptr || !ad->lora[ti].a.defined()) return std::nullopt;
  const auto rows = [&](const Tensor& m) {
    return count < 0 || !m.defined() ? m : m.view(first * m.shape()[1], {count, m.shape()[1]});
  };
  const LoraFactors& f = ad->lora[ti];
  const LoraFactors& f16 = ad->bf16.lora[ti];
  LatentAdapter out{{f.a, rows(f.b)}, {f16.a, rows(f16.b)}, ad->lora_scale, a.lora_u[ti], b.dropout, {}};
  if (b.dropout != nullptr) out.mask = b.dropout->mask(layer, static_cast<int>(t), 0);
  return out;
}

// y (float32, or in mixed precision bf16 y16 in place) += the adapter's term for x (x16), keeping its u.
void add_adapter(const ModelContext& ctx, const std::optional<LatentAdapter>& adapter, const LayerActivations& a,
                 const Tensor& x, const Tensor& x16, const Tensor& y, const Tensor& y16, std::int64_t n,
                 std::int64_t in, std::int64_t out) {
  if (!adapter) return;
  adapter_site_forward(ctx, adapter->site(), a.lora_u32, x, x16, y16.defined() ? nullptr : y.f32(),
                       y16.defined() ? y16.bf16() : nullptr, n, in, out);
}

// The queries (q_a_proj, its norm, q_b_proj -- or q_proj), c normed and the rotated key from n1 (`in`),
// RoPE applied to the queries' rotated parts and the key (`rope` null: none), each projection with its
// adapter where `ad` has one: what the training forward and generation's absorbed attention both start from.
void latent_inputs(const ModelContext& ctx, const BatchGeometry& b, std::int64_t layer, const LayerWeights& w,
                   const LayerWeights* ad, LayerActivations& la, const ColumnInput& in, const RopeTable* rope) {
  const auto& kern = ctx.k;
  LatentActivations& a = la.latent;
  const Tensor &q = la.q, &q16 = la.q_bf16;
  const LatentDims l = latent_dims(ctx.dims, ctx.config);
  const std::int64_t n = b.rows, q_width = ctx.dims.q_width();
  const Tensor none;
  const auto adapter = [&](LoraTarget t, std::int64_t first = 0, std::int64_t count = -1) {
    return latent_adapter(b, layer, ad, la, t, first, count);
  };
  if (l.q_rank > 0) {
    linear_forward_into(ctx, a.q_latent, a.q_latent16, in.x, in.x16, w.q_a_proj, w.bf16.q_a_proj, none, n, l.hidden,
                        l.q_rank);
    add_adapter(ctx, adapter(LoraTarget::QA), la, in.x, in.x16, a.q_latent, a.q_latent16, n, l.hidden, l.q_rank);
    latent_norm_forward(ctx, a.q_normed, a.q_normed16, a.rstd_q, a.q_latent, a.q_latent16, w.q_a_norm, n, l.q_rank);
    linear_forward_into(ctx, q, q16, a.q_normed, a.q_normed16, w.q_proj, w.bf16.q_proj, none, n, l.q_rank, q_width);
    add_adapter(ctx, adapter(LoraTarget::Q), la, a.q_normed, a.q_normed16, q, q16, n, l.q_rank, q_width);
  } else {
    linear_forward_into(ctx, q, q16, in.x, in.x16, w.q_proj, w.bf16.q_proj, none, n, l.hidden, q_width);
    add_adapter(ctx, adapter(LoraTarget::Q), la, in.x, in.x16, q, q16, n, l.hidden, q_width);
  }
  // The latent c and the rotated key: kv_a_proj_with_mqa's two row blocks, each its own product (its
  // adapter's u formed for each, the same).
  linear_forward_into(ctx, a.c_kv, a.c_kv16, in.x, in.x16, weight_rows(w.kv_a_proj, 0, l.kv_rank),
                      weight_rows(w.bf16.kv_a_proj, 0, l.kv_rank), none, n, l.hidden, l.kv_rank);
  add_adapter(ctx, adapter(LoraTarget::KvA, 0, l.kv_rank), la, in.x, in.x16, a.c_kv, a.c_kv16, n, l.hidden, l.kv_rank);
  linear_forward_into(ctx, a.k_rope, a.k_rope16, in.x, in.x16, weight_rows(w.kv_a_proj, l.kv_rank, l.rope),
                      weight_rows(w.bf16.kv_a_proj, l.kv_rank, l.rope), none, n, l.hidden, l.rope);
  add_adapter(ctx, adapter(LoraTarget::KvA, l.kv_rank, l.rope), la, in.x, in.x16, a.k_rope, a.k_rope16, n, l.hidden,
              l.rope);
  latent_norm_forward(ctx, a.c_normed, a.c_normed16, a.rstd_c, a.c_kv, a.c_kv16, w.kv_a_norm, n, l.kv_rank);
  if (rope == nullptr) return;
  const bool mixed = q16.defined();
  const Bytes qb = bytes_of(q, q16), qr = bytes_of(a.q_rope, a.q_rope16);
  rope_query_part(ctx, b, l, qb.p, qb.size, qr.p, mixed, false, *rope);
  const std::int32_t* rows = rope_rows(ctx, b, rope);
  if (mixed) {
    kern.rope_forward_bf16(a.k_rope16.bf16(), rows, rope->cos(), rope->sin(), n, 1, l.rope, l.rope,
                           ctx.config.rope_pairs);
  } else {
    kern.rope_forward(a.k_rope.f32(), rows, rope->cos(), rope->sin(), n, 1, l.rope, l.rope, ctx.config.rope_pairs);
  }
}

}  // namespace

LatentShapes latent_activation_shapes(const TpDims& d, const ModelConfig& c, std::int64_t rows, bool cached) {
  const LatentDims l = latent_dims(d, c);
  const Shape q_latent{l.q_rank > 0 ? rows : 0, l.q_rank};
  const std::int64_t row = cached ? l.kv_rank + l.rope : 0;
  return {{q_latent,
           q_latent,
           {rows, l.kv_rank},
           {rows, l.kv_rank},
           {rows, l.rope},
           {cached ? 0 : rows, l.kv_width()},  // (generation's absorbed attention forms no kv_b_proj output)
           {rows, d.o_width()},
           {rows, l.heads * l.rope},
           {rows, row},
           {rows, l.heads * row},
           {rows, l.heads * row}},
          {{l.q_rank > 0 ? rows : 0}, {rows}}};
}

std::vector<Shape> latent_grad_shapes(const TpDims& d, const ModelConfig& c, std::int64_t rows) {
  const LatentDims l = latent_dims(d, c);
  return {{rows * (l.q_rank + l.kv_rank + l.rope)},
          {l.q_rank > 0 ? rows : 0, l.q_rank},
          {rows, l.kv_rank},
          {rows, l.kv_width()},
          {rows, d.o_width()},
          {rows, l.heads * l.rope},
          {std::max(l.q_rank, l.kv_rank)}};
}

void LatentActivations::allocate(const TpDims& d, const ModelConfig& c, std::int64_t rows, Device device, bool mixed,
                                 bool cached) {
  const LatentShapes shapes = latent_activation_shapes(d, c, rows, cached);
  const auto t = workspace_.carve(device, shapes.act, 1, mixed ? DType::BF16 : DType::F32);
  const auto f = workspace_f32_.carve(device, shapes.f32);
  Tensor* f32s[] = {&q_latent, &q_normed, &c_kv,       &c_normed,   &k_rope,    &kv,
                    &out,      &q_rope,   &cached_row, &q_absorbed, &out_latent};
  Tensor* bf16s[] = {&q_latent16, &q_normed16, &c_kv16,       &c_normed16,   &k_rope16,    &kv16,
                     &out16,      &q_rope16,   &cached_row16, &q_absorbed16, &out_latent16};
  for (std::size_t i = 0; i < t.size(); ++i) {
    *(mixed ? bf16s : f32s)[i] = t[i];
    *(mixed ? f32s : bf16s)[i] = Tensor();
  }
  if (c.q_lora_rank == 0) q_latent = q_normed = q_latent16 = q_normed16 = Tensor();
  rstd_q = c.q_lora_rank > 0 ? f[0] : Tensor();
  rstd_c = f[1];
}

void LatentGradScratch::allocate(const TpDims& d, const ModelConfig& c, std::int64_t rows, Device device) {
  const auto t = workspace_.carve(device, latent_grad_shapes(d, c, rows));
  const std::int64_t q = c.q_lora_rank, kv = c.kv_lora_rank;
  d_latent = t[0];
  d_q_normed = q > 0 ? d_latent.view(0, {rows, q}) : Tensor();
  d_c_normed = d_latent.view(rows * q, {rows, kv});
  d_k_rope = d_latent.view(rows * (q + kv), {rows, c.rotary_dim});
  d_q_latent = q > 0 ? t[1] : Tensor();
  d_c_kv = t[2], d_kv = t[3], d_out = t[4], d_q_rope = t[5], frozen_norm = t[6];
}

void latent_attention_forward(const ModelContext& ctx, const BatchGeometry& b, std::int64_t layer,
                              const LayerWeights& w, const LayerWeights* ad, LayerActivations& la,
                              const ColumnInput& in, const RopeTable* rope) {
  const auto& kern = ctx.k;
  LatentActivations& a = la.latent;
  const Tensor &q16 = la.q_bf16, &k = la.k, &k16 = la.k_bf16, &v = la.v, &v16 = la.v_bf16;
  const LatentDims l = latent_dims(ctx.dims, ctx.config);
  const std::int64_t n = b.rows;
  latent_inputs(ctx, b, layer, w, ad, la, in, rope);
  linear_forward_into(ctx, a.kv, a.kv16, a.c_normed, a.c_normed16, w.kv_b_proj, w.bf16.kv_b_proj, Tensor(), n,
                      l.kv_rank, l.kv_width());
  add_adapter(ctx, latent_adapter(b, layer, ad, la, LoraTarget::KvB), la, a.c_normed, a.c_normed16, a.kv, a.kv16, n,
              l.kv_rank, l.kv_width());
  const bool mixed = q16.defined();
  const Bytes kb = bytes_of(k, k16), vb = bytes_of(v, v16), kvb = bytes_of(a.kv, a.kv16);
  const Bytes kr = bytes_of(a.k_rope, a.k_rope16);
  const std::int64_t es = kb.size;
  // Each head's key: its content part from kv_b_proj, then the shared rotated key; its value, padded.
  const std::int64_t kv_pitch = (l.nope + l.v) * es, pitch = l.head_dim * es;
  kern.copy_2d(kb.p, pitch, kvb.p, kv_pitch, l.nope * es, n * l.heads);
  for (std::int64_t h = 0; h < l.heads; ++h) {
    kern.copy_2d(kb.p + (h * l.head_dim + l.nope) * es, l.heads * pitch, kr.p, l.rope * es, l.rope * es, n);
  }
  if (l.v < l.head_dim) (mixed ? v16 : v).zero_();
  kern.copy_2d(vb.p, pitch, kvb.p + l.nope * es, kv_pitch, l.v * es, n * l.heads);
}

// Generation's kv_b_proj adapter (absorbed attention): every head's absorbed query += scale (q_c B_kc) A
// (`queries`) or its output += scale (o_latent A^T) B_vc^T (not `queries`), B_kc and B_vc the head's
// key-content and value rows of B; the [rows, rank] products through the adapter's u buffers (their values
// unused: no backward).
void absorbed_adapter(const ModelContext& ctx, const LatentDims& l, const LayerActivations& la,
                      const LatentAdapter& adapter, std::int64_t n, bool queries) {
  const auto& kern = ctx.k;
  const LatentActivations& a = la.latent;
  const LoraFactors &f = adapter.w, &f16 = adapter.w16;
  const float scale = adapter.scale;
  const std::int64_t r = f.a.shape()[0], row = l.kv_rank + l.rope, b_rows = l.nope + l.v;
  const bool mixed = la.q_bf16.defined();
  const Tensor& t = adapter.u;  // [rows, rank]: bf16 in mixed precision
  for (std::int64_t h = 0; h < l.heads; ++h) {
    const std::int64_t b_first = (h * b_rows + (queries ? 0 : l.nope)) * r;
    if (mixed) {
      if (queries) {
        kern.gemm_bf16(false, false, n, r, l.nope, 1.0f, la.q_bf16.bf16() + h * l.head_dim, l.heads * l.head_dim,
                       f16.b.bf16() + b_first, r, 0.0f, la.lora_u32.f32(), r);
      } else {
        kern.gemm_bf16(false, true, n, r, l.kv_rank, 1.0f, a.out_latent16.bf16() + h * row, l.heads * row, f16.a.bf16(),
                       l.kv_rank, 0.0f, la.lora_u32.f32(), r);
      }
      kern.to_bf16(t.bf16(), la.lora_u32.f32(), n * r);
      if (queries) {
        kern.gemm_bf16(false, false, n, l.kv_rank, r, scale, t.bf16(), r, f16.a.bf16(), l.kv_rank, 1.0f,
                       a.q_absorbed16.bf16() + h * row, l.heads * row);
      } else {
        kern.gemm_bf16(false, true, n, l.v, r, scale, t.bf16(), r, f16.b.bf16() + b_first, r, 1.0f,
                       a.out16.bf16() + h * l.v, l.heads * l.v);
      }
    } else if (queries) {
      kern.gemm(false, false, n, r, l.nope, 1.0f, la.q.f32() + h * l.head_dim, l.heads * l.head_dim,
                f.b.f32() + b_first, r, 0.0f, t.f32(), r);
      kern.gemm(false, false, n, l.kv_rank, r, scale, t.f32(), r, f.a.f32(), l.kv_rank, 1.0f,
                a.q_absorbed.f32() + h * row, l.heads * row);
    } else {
      kern.gemm(false, true, n, r, l.kv_rank, 1.0f, a.out_latent.f32() + h * row, l.heads * row, f.a.f32(), l.kv_rank,
                0.0f, t.f32(), r);
      kern.gemm(false, true, n, l.v, r, scale, t.f32(), r, f.b.f32() + b_first, r, 1.0f, a.out.f32() + h * l.v,
                l.heads * l.v);
    }
  }
}

void latent_attention_cached(const ModelContext& ctx, const BatchGeometry& b, std::int64_t layer, const LayerWeights& w,
                             const LayerWeights* ad, LayerActivations& la, const ColumnInput& in,
                             const KvCacheView& cache, const kernels::AttentionScores& scores, const RopeTable* rope) {
  const auto& kern = ctx.k;
  LatentActivations& a = la.latent;
  const Tensor &q = la.q, &q16 = la.q_bf16;
  const LatentDims l = latent_dims(ctx.dims, ctx.config);
  const std::int64_t n = b.rows, row = l.kv_rank + l.rope;
  const bool mixed = q16.defined();
  require(cache.bf16 == mixed, "KV cache in ", cache.bf16 ? "bf16" : "float32", " for a layer computing in ",
          mixed ? "bf16" : "float32");
  latent_inputs(ctx, b, layer, w, ad, la, in, rope);
  const std::optional<LatentAdapter> kv_b = latent_adapter(b, layer, ad, la, LoraTarget::KvB);
  const Bytes qb = bytes_of(q, q16), kr = bytes_of(a.k_rope, a.k_rope16), cn = bytes_of(a.c_normed, a.c_normed16);
  const Bytes cached = bytes_of(a.cached_row, a.cached_row16), qa = bytes_of(a.q_absorbed, a.q_absorbed16);
  const std::int64_t es = qb.size;
  // The rows' [c, rotated key] into the cache.
  kern.copy_2d(cached.p, row * es, cn.p, l.kv_rank * es, l.kv_rank * es, n);
  kern.copy_2d(cached.p + l.kv_rank * es, row * es, kr.p, l.rope * es, l.rope * es, n);
  if (mixed) {
    kern.scatter_rows_bf16(static_cast<std::uint16_t*>(cache.keys), a.cached_row16.bf16(), cache.cache_rows, n, row);
  } else {
    kern.scatter_rows(static_cast<float*>(cache.keys), a.cached_row.f32(), cache.cache_rows, n, row);
  }
  // Each head's absorbed query: its content part through its key-content rows of kv_b_proj (W_kc
  // [qk_nope_head_dim, kv_lora_rank]), then its rotated part.
  const std::int64_t kv_stride = (l.nope + l.v) * l.kv_rank;  // a head's rows of kv_b_proj
  for (std::int64_t h = 0; h < l.heads; ++h) {
    if (mixed) {
      kern.gemm_bf16(false, false, n, l.kv_rank, l.nope, 1.0f, q16.bf16() + h * l.head_dim, l.heads * l.head_dim,
                     w.bf16.kv_b_proj.bf16() + h * kv_stride, l.kv_rank, 0.0f, a.q_absorbed16.bf16() + h * row,
                     l.heads * row);
    } else {
      kern.gemm(false, false, n, l.kv_rank, l.nope, 1.0f, q.f32() + h * l.head_dim, l.heads * l.head_dim,
                w.kv_b_proj.f32() + h * kv_stride, l.kv_rank, 0.0f, a.q_absorbed.f32() + h * row, l.heads * row);
    }
  }
  if (kv_b) absorbed_adapter(ctx, l, la, *kv_b, n, true);
  kern.copy_2d(qa.p + l.kv_rank * es, row * es, qb.p + l.nope * es, l.head_dim * es, l.rope * es, n * l.heads);
  // Attention over the cached rows: one kv head of `row` dimensions whose values are the keys' row.
  if (mixed) {
    const auto* keys = static_cast<const std::uint16_t*>(cache.keys);
    kern.cached_attention_forward_bf16(a.out_latent16.bf16(), a.q_absorbed16.bf16(), keys, keys, b.cu_seqlens,
                                       cache.slots, cache.first_positions, b.num_seqs, cache.capacity, l.heads, 1, row,
                                       scores);
  } else {
    const auto* keys = static_cast<const float*>(cache.keys);
    kern.cached_attention_forward(a.out_latent.f32(), a.q_absorbed.f32(), keys, keys, b.cu_seqlens, cache.slots,
                                  cache.first_positions, b.num_seqs, cache.capacity, l.heads, 1, row, scores);
  }
  // Each head's values: its output over c through its value rows of kv_b_proj (W_vc [v_head_dim,
  // kv_lora_rank]), into o_proj's input.
  for (std::int64_t h = 0; h < l.heads; ++h) {
    const std::int64_t values = h * kv_stride + l.nope * l.kv_rank;
    if (mixed) {
      kern.gemm_bf16(false, true, n, l.v, l.kv_rank, 1.0f, a.out_latent16.bf16() + h * row, l.heads * row,
                     w.bf16.kv_b_proj.bf16() + values, l.kv_rank, 0.0f, a.out16.bf16() + h * l.v, l.heads * l.v);
    } else {
      kern.gemm(false, true, n, l.v, l.kv_rank, 1.0f, a.out_latent.f32() + h * row, l.heads * row,
                w.kv_b_proj.f32() + values, l.kv_rank, 0.0f, a.out.f32() + h * l.v, l.heads * l.v);
    }
  }
  if (kv_b) absorbed_adapter(ctx, l, la, *kv_b, n, false);
}

void latent_attention_output(const ModelContext& ctx, const BatchGeometry& b, LatentActivations& a, const Tensor& attn,
                             const Tensor& attn16) {
  const TpDims& d = ctx.dims;
  const Bytes from = bytes_of(attn, attn16), to = bytes_of(a.out, a.out16);
  ctx.k.copy_2d(to.p, d.v_head_dim * to.size, from.p, d.head_dim * from.size, d.v_head_dim * to.size, b.rows * d.heads);
}

void latent_attention_output_backward(const ModelContext& ctx, const BatchGeometry& b, const LatentGradScratch& s,
                                      const Tensor& d_attn) {
  const TpDims& d = ctx.dims;
  constexpr std::int64_t es = sizeof(float);
  if (d.v_head_dim < d.head_dim) d_attn.zero_();
  ctx.k.copy_2d(d_attn.raw(), d.head_dim * es, s.d_out.raw(), d.v_head_dim * es, d.v_head_dim * es, b.rows * d.heads);
}

void latent_attention_backward(const ModelContext& ctx, const BatchGeometry& b, std::int64_t layer,
                               const LayerWeights& w, LayerWeights& g, const LayerWeights* ad,
                               const LayerActivations& la, LayerGradScratch& gs, const ColumnInput& in, bool accumulate,
                               const RopeTable* rope) {
  const auto& kern = ctx.k;
  const LatentActivations& a = la.latent;
  LatentGradScratch& s = gs.latent;
  const Tensor &dq = gs.dq, &dk = gs.dk, &dv = gs.dv, &dy16 = gs.dy_bf16, &d_norm = gs.d_norm;
  float* d_n1 = d_norm.f32();
  const LatentDims l = latent_dims(ctx.dims, ctx.config);
  const std::int64_t n = b.rows, q_width = ctx.dims.q_width();
  constexpr std::int64_t es = sizeof(float);
  const auto adapter = [&](LoraTarget t, std::int64_t first = 0, std::int64_t count = -1) {
    return latent_adapter(b, layer, ad, la, t, first, count);
  };
  // A column-parallel projection's adapter (q_b_proj's, kv_b_proj's), right after its projection's backward
  // (whose bf16 dy it reads): its whole factor's gradient a partial sum for the layer's reduction, its input
  // gradient (+=) this rank's part, as its projection's.
  const auto column_adapter_backward = [&](LoraTarget t, const float* dy, const Tensor& x, const Tensor& x16, float* dx,
                                           std::int64_t in_width, std::int64_t out_width) {
    const std::optional<LatentAdapter> site = adapter(t);
    if (!site) return;
    const auto ti = static_cast<std::size_t>(t);
    const auto [da, db] = adapter_grads(g.lora[ti], t, gs.lora_replicated, adapter_slot(t), ctx.tp.size() > 1);
    adapter_site_backward(ctx, site->site(), da, db, dy, dy16, x, x16, gs.lora_du, gs.lora_du16, dx, n, in_width,
                          out_width);
  };

  // The latents' gradients from this rank's heads: the rotated key's (the sum over the heads, RoPE
  // undone), c's normed (kv_b_proj's input gradient) and q's normed (q_b_proj's).
  s.d_k_rope.zero_();
  for (std::int64_t h = 0; h < l.heads; ++h) {
    kern.add_2d(s.d_k_rope.f32(), l.rope, dk.f32() + h * l.head_dim + l.nope, l.heads * l.head_dim, n, l.rope);
  }
  if (rope != nullptr) {
    rope_query_part(ctx, b, l, static_cast<char*>(dq.raw()), es, static_cast<char*>(s.d_q_rope.raw()), false, true,
                    *rope);
    kern.rope_backward(s.d_k_rope.f32(), rope_rows(ctx, b, rope), rope->cos(), rope->sin(), n, 1, l.rope, l.rope,
                       ctx.config.rope_pairs);
  }
  const std::int64_t kv_pitch = (l.nope + l.v) * es, pitch = l.head_dim * es;
  char* d_kv = static_cast<char*>(s.d_kv.raw());
  kern.copy_2d(d_kv, kv_pitch, dk.raw(), pitch, l.nope * es, n * l.heads);
  kern.copy_2d(d_kv + l.nope * es, kv_pitch, dv.raw(), pitch, l.v * es, n * l.heads);
  linear_backward(ctx, s.d_c_normed.f32(), f32_or_null(g.kv_b_proj), s.d_kv.f32(), dy16, a.c_normed, a.c_normed16,
                  w.kv_b_proj, w.bf16.kv_b_proj, n, l.kv_rank, l.kv_width(), false);
  column_adapter_backward(LoraTarget::KvB, s.d_kv.f32(), a.c_normed, a.c_normed16, s.d_c_normed.f32(), l.kv_rank,
                          l.kv_width());
  if (l.q_rank > 0) {
    linear_backward(ctx, s.d_q_normed.f32(), f32_or_null(g.q_proj), dq.f32(), dy16, a.q_normed, a.q_normed16, w.q_proj,
                    w.bf16.q_proj, n, l.q_rank, q_width, false);
    column_adapter_backward(LoraTarget::Q, dq.f32(), a.q_normed, a.q_normed16, s.d_q_normed.f32(), l.q_rank, q_width);
  } else {  // q_proj reads n1 itself: its input gradient is column-parallel's, this rank's heads' part
    linear_backward(ctx, d_n1, f32_or_null(g.q_proj), dq.f32(), dy16, in.x, in.x16, w.q_proj, w.bf16.q_proj, n,
                    l.hidden, q_width, accumulate);
    accumulate = true;
    column_adapter_backward(LoraTarget::Q, dq.f32(), in.x, in.x16, d_n1, l.hidden, q_width);
  }
  // Summed over TP (one all-reduce of the three, float32), they are the whole gradients on every rank: the
  // replicated part's backward runs as with one rank -- its weights' gradients whole on each, the same.
  ctx.tp.all_reduce(s.d_latent.f32(), static_cast<std::size_t>(s.d_latent.numel()));
  // (A frozen norm's weight gradient, LoRA's base, goes to a scratch nothing reads.)
  const auto norm_grad = [&](const Tensor& grad) { return grad.defined() ? grad.f32() : s.frozen_norm.f32(); };
  latent_norm_backward(ctx, s.d_c_kv, norm_grad(g.kv_a_norm), s.d_c_normed, a.c_kv, a.c_kv16, w.kv_a_norm, a.rstd_c, n,
                       l.kv_rank);
  if (l.q_rank > 0) {
    latent_norm_backward(ctx, s.d_q_latent, norm_grad(g.q_a_norm), s.d_q_normed, a.q_latent, a.q_latent16, w.q_a_norm,
                         a.rstd_q, n, l.q_rank);
  }
  // Each replicated projection (and its adapter): its weight's gradient over every row, and its input gradient
  // over this rank's share of the rows alone (the others' rows are theirs), which the TP reduction of d n1 sums.
  const std::int64_t share = (n + ctx.tp.size() - 1) / ctx.tp.size();
  const std::int64_t first = std::min(n, share * ctx.tp.rank()), mine = std::min(n, first + share) - first;
  if (!accumulate) d_norm.zero_();
  const bool mixed = in.x16.defined();
  const auto replicated_backward = [&](const Tensor& dy, float* dw, const Tensor& weight, const Tensor& weight16,
                                       std::int64_t out, LoraTarget t, std::int64_t b_first) {
    const std::optional<LatentAdapter> site = adapter(t, b_first, out);
    if (dw != nullptr) {
      linear_backward(ctx, nullptr, dw, dy.f32(), dy16, in.x, in.x16, weight, weight16, n, l.hidden, out, true);
    }
    if (site) {  // (dy16: bf16(dy) of every row, as the weight's backward rounds it -- or here, the weight frozen)
      if (dw == nullptr && mixed) kern.to_bf16(dy16.bf16(), dy.f32(), n * out);
      const LoraFactors& grad = g.lora[static_cast<std::size_t>(t)];
      const std::int64_t r = grad.a.shape()[0];
      adapter_site_backward(ctx, site->site(), grad.a.f32(), grad.b.f32() + b_first * r, dy.f32(), dy16, in.x, in.x16,
                            gs.lora_du, gs.lora_du16, nullptr, n, l.hidden, out);
    }
    if (mine > 0) {
      linear_backward(ctx, d_n1 + first * l.hidden, nullptr, dy.f32() + first * out, dy16, in.x, in.x16, weight,
                      weight16, mine, l.hidden, out, true);
      if (site) {  // dy16 now holds those rows' bf16, from the product above
        adapter_site_input_backward(ctx, site->site(), dy.f32() + first * out, dy16, gs.lora_du, gs.lora_du16,
                                    d_n1 + first * l.hidden, first, mine, l.hidden, out);
      }
    }
  };
  float* dw_kv_a = f32_or_null(g.kv_a_proj);
  replicated_backward(s.d_c_kv, dw_kv_a, weight_rows(w.kv_a_proj, 0, l.kv_rank),
                      weight_rows(w.bf16.kv_a_proj, 0, l.kv_rank), l.kv_rank, LoraTarget::KvA, 0);
  replicated_backward(s.d_k_rope, dw_kv_a != nullptr ? dw_kv_a + l.kv_rank * l.hidden : nullptr,
                      weight_rows(w.kv_a_proj, l.kv_rank, l.rope), weight_rows(w.bf16.kv_a_proj, l.kv_rank, l.rope),
                      l.rope, LoraTarget::KvA, l.kv_rank);
  if (l.q_rank > 0) {
    replicated_backward(s.d_q_latent, f32_or_null(g.q_a_proj), w.q_a_proj, w.bf16.q_a_proj, l.q_rank, LoraTarget::QA,
                        0);
  }
}

}  // namespace spin::model
