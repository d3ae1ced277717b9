#include "model/lm_head.h"

#include "model/linear.h"
#include "model/tp_regions.h"

namespace spin::model {

void HeadActivations::allocate(const TpDims& d, const BatchGeometry& b, Device device, bool mixed) {
  const std::int64_t rows = b.rows;
  const Shape residual{b.residual_rows(), d.hidden}, gathered{b.gathered_rows(), d.hidden};
  const Shape f32_normed = mixed ? Shape{0} : residual;  // mixed precision: bf16 only
  const auto t = workspace_.carve(device, {residual, f32_normed, {b.residual_rows()}, {rows, d.vocab_rows}, {rows},
                                           {2, rows}, {rows}, {rows}, gathered, {b.split ? d.hidden : 0}});
  x = t[0], rstd = t[2], logits = t[3], lse = t[4], sums = t[5];
  logprob = t[6], dlogprob = t[7], d_normed = t[8];
  d_norm_weight = b.split ? t[9] : Tensor();
  if (mixed) {
    const auto h = workspace_bf16_.carve(device, {residual, {rows, d.vocab_rows}}, 1, DType::BF16);
    normed_bf16 = h[0], dlogits_bf16 = h[1];
    normed = Tensor();
  } else {
    normed = t[1];
    normed_bf16 = dlogits_bf16 = Tensor();
  }
}

void lm_head_logits(const ModelContext& ctx, const HeadWeights& w, const BatchGeometry& b, HeadActivations& a) {
  const TpDims& d = ctx.dims;
  const ColumnInput in = norm_into_column_parallel(ctx, b, a.normed, a.normed_bf16, a.rstd.f32(), a.x.f32(), w.norm);
  linear_forward(ctx, a.logits.f32(), in.x, in.x16, w.head, w.head_bf16, b.rows, d.hidden, d.vocab_rows, true);
}

void lm_head_forward(const ModelContext& ctx, const HeadWeights& w, const BatchGeometry& b,
                     const std::int32_t* targets, HeadActivations& a) {
  const auto& k = ctx.k;
  const TpDims& d = ctx.dims;
  const std::int64_t n = b.rows;
  lm_head_logits(ctx, w, b, a);

  float* row_max = a.lse.f32();
  k.logits_max(row_max, a.logits.f32(), n, d.vocab_rows, d.vocab_valid);
  ctx.tp.all_reduce(row_max, static_cast<std::size_t>(n), parallel::ReduceOp::Max);
  float* sums = a.sums.f32();  // [sumexp | target logit], one all-reduce for both
  k.logits_sumexp_target(sums, sums + n, a.logits.f32(), row_max, targets, n, d.vocab_rows,
                         d.vocab_valid, d.vocab_start);
  ctx.tp.all_reduce(sums, static_cast<std::size_t>(2 * n));
  k.logprob_from_sums(a.logprob.f32(), row_max, sums, targets, n);  // row_max becomes the lse
}

void lm_head_backward(const ModelContext& ctx, const HeadWeights& w, const BatchGeometry& b, Tensor& norm_grad,
                      Tensor& head_grad, const std::int32_t* targets, HeadActivations& a, const Tensor& dx) {
  const auto& k = ctx.k;
  const TpDims& d = ctx.dims;
  const std::int64_t n = b.rows;
  float* dlogits = a.logits.f32();  // in place: the logits are not needed afterwards
  k.logprob_backward(dlogits, a.logits.f32(), a.lse.f32(), targets, a.dlogprob.f32(), n, d.vocab_rows,
                     d.vocab_valid, d.vocab_start);
  const ColumnInput in = column_input(ctx, b, a.normed, a.normed_bf16);
  linear_backward(ctx, a.d_normed.f32(), head_grad.f32(), dlogits, a.dlogits_bf16, in.x, in.x16, w.head,
                  w.head_bf16, n, d.hidden, d.vocab_rows, false);
  dx.zero_();
  column_parallel_norm_backward(ctx, b, a.d_normed, a.d_norm_weight, dx.f32(), norm_grad, a.x.f32(), w.norm,
                                a.rstd.f32());
}

}  // namespace spin::model
