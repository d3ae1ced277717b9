#include "model/tp_regions.h"

#include "model/linear.h"
#include "parallel/tp_mappings.h"

namespace spin::model {

namespace p = spin::parallel;

ColumnInput column_input(const ModelContext& ctx, const BatchGeometry& b, const Tensor& out, const Tensor& out16) {
  if (!b.split) return {out, out16};
  const Tensor& all = b.split->gathered;
  const auto count = static_cast<std::size_t>(b.split->local * ctx.dims.hidden);
  if (out16.defined()) {
    p::gather_from_sequence_parallel_forward(ctx.tp, out16.bf16(), all.bf16(), count);
    return {Tensor(), all};
  }
  p::gather_from_sequence_parallel_forward(ctx.tp, out.f32(), all.f32(), count);
  return {all, Tensor()};
}

ColumnInput norm_into_column_parallel(const ModelContext& ctx, const BatchGeometry& b, const Tensor& out,
                                      const Tensor& out16, float* rstd, const float* x, const Tensor& w) {
  norm_for_products(ctx, out, out16, rstd, x, w, b.residual_rows());
  if (b.split) return column_input(ctx, b, out, out16);
  p::copy_to_tp_region_forward(ctx.tp, products_input(out, out16), static_cast<std::size_t>(b.rows * ctx.dims.hidden));
  return {out, out16};
}

void column_parallel_norm_backward(const ModelContext& ctx, const BatchGeometry& b, const Tensor& d_norm_rows,
                                   const Tensor& d_norm_weight, float* dx, const Tensor& dw, const float* x,
                                   const Tensor& w, const float* rstd) {
  const auto& k = ctx.k;
  const std::int64_t h = ctx.dims.hidden;
  float* d_norm = d_norm_rows.f32();
  // Without a weight: OLMo's LayerNorm, or no norm (OLMo 2's halves: the products read x itself).
  const auto unweighted = [&](std::int64_t rows) {
    if (ctx.config.layer_norm) {
      k.layernorm_backward(dx, d_norm, x, rstd, rows, h);
    } else {
      k.add_inplace(dx, d_norm, rows * h);
    }
  };
  if (!b.split) {
    p::copy_to_tp_region_backward(ctx.tp, d_norm, static_cast<std::size_t>(b.rows * h));
    if (!w.defined()) return unweighted(b.rows);
    k.rmsnorm_backward(dx, dw.f32(), d_norm, x, w.f32(), rstd, b.rows, h, ctx.config.norm_weight_offset);
    return;
  }
  const SequenceSplit& split = *b.split;
  d_norm_rows.view(b.rows * h, {split.padded - b.rows, h}).zero_();
  p::gather_from_sequence_parallel_backward(ctx.tp, d_norm, d_norm, static_cast<std::size_t>(split.local * h));
  if (!w.defined()) return unweighted(split.local);
  d_norm_weight.zero_();
  k.rmsnorm_backward(dx, d_norm_weight.f32(), d_norm, x, w.f32(), rstd, split.local, h, ctx.config.norm_weight_offset);
  ctx.tp.all_reduce(d_norm_weight.f32(), static_cast<std::size_t>(h));
  k.add_inplace(dw.f32(), d_norm_weight.f32(), h);
}

void reduce_row_parallel(const ModelContext& ctx, const BatchGeometry& b, float* out) {
  const std::int64_t h = ctx.dims.hidden;
  if (!b.split) {
    p::reduce_from_tp_region_forward(ctx.tp, out, static_cast<std::size_t>(b.rows * h));
    return;
  }
  const SequenceSplit& s = *b.split;
  s.full.view(b.rows * h, {s.padded - b.rows, h}).zero_();
  p::reduce_scatter_to_sequence_parallel_forward(ctx.tp, s.full.f32(), out, static_cast<std::size_t>(s.local * h));
}

const float* row_parallel_grad(const ModelContext& ctx, const BatchGeometry& b, float* dx) {
  const std::int64_t h = ctx.dims.hidden;
  if (!b.split) {
    p::reduce_from_tp_region_backward(ctx.tp, dx, static_cast<std::size_t>(b.rows * h));
    return dx;
  }
  const SequenceSplit& s = *b.split;
  p::reduce_scatter_to_sequence_parallel_backward(ctx.tp, dx, s.full.f32(), static_cast<std::size_t>(s.local * h));
  return s.full.f32();
}

}  // namespace spin::model
