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
                                      const Tensor& out16, float* rstd, const float* x, const NormParams& w) {
  norm_for_products(ctx, out, out16, rstd, x, w, b.residual_rows());
  if (b.split) return column_input(ctx, b, out, out16);
  p::copy_to_tp_region_forward(ctx.tp, products_input(out, out16), static_cast<std::size_t>(b.rows * ctx.dims.hidden));
  return {out, out16};
}

void column_parallel_norm_backward(const ModelContext& ctx, const BatchGeometry& b, const Tensor& d_norm_rows,
                                   const Tensor& d_norm_params, float* dx, const NormParams& dw, const float* x,
                                   const NormParams& w, const float* rstd) {
  const auto& k = ctx.k;
  const std::int64_t h = ctx.dims.hidden;
  float* d_norm = d_norm_rows.f32();
  // The norm's backward over `rows` rows: the input gradient into dx, the parameters' into
  // dweight and dbias (null: none).
  const auto norm_backward = [&](std::int64_t rows, float* dweight, float* dbias) {
    if (ctx.config.layer_norm) {
      k.layernorm_backward(dx, dweight, dbias, d_norm, x, f32_or_null(w.weight), rstd, rows, h);
    } else if (!w.weight.defined()) {  // no norm (OLMo 2's halves: the products read x itself)
      k.add_inplace(dx, d_norm, rows * h);
    } else {
      k.rmsnorm_backward(dx, dweight, d_norm, x, w.weight.f32(), rstd, rows, h, ctx.config.norm_weight_offset);
    }
  };
  float* dweight = w.weight.defined() ? f32_or_null(dw.weight) : nullptr;
  float* dbias = w.bias.defined() ? f32_or_null(dw.bias) : nullptr;
  if (!b.split) {
    p::copy_to_tp_region_backward(ctx.tp, d_norm, static_cast<std::size_t>(b.rows * h));
    norm_backward(b.rows, dweight, dbias);
    return;
  }
  const SequenceSplit& split = *b.split;
  d_norm_rows.view(b.rows * h, {split.padded - b.rows, h}).zero_();
  p::gather_from_sequence_parallel_backward(ctx.tp, d_norm, d_norm, static_cast<std::size_t>(split.local * h));
  if (dweight == nullptr && dbias == nullptr) return norm_backward(split.local, nullptr, nullptr);
  d_norm_params.zero_();
  float* partial = d_norm_params.f32();  // [weight's | bias's]
  norm_backward(split.local, dweight != nullptr ? partial : nullptr, dbias != nullptr ? partial + h : nullptr);
  ctx.tp.all_reduce(partial, static_cast<std::size_t>((dbias != nullptr ? 2 : 1) * h));
  if (dweight != nullptr) k.add_inplace(dweight, partial, h);
  if (dbias != nullptr) k.add_inplace(dbias, partial + h, h);
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
