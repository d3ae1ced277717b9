#include "model/lm_head.h"

#include "model/linear.h"
#include "parallel/tp_mappings.h"

namespace spin::model {

namespace p = spin::parallel;

void HeadActivations::allocate(const TpDims& d, std::int64_t rows, Device device, bool mixed) {
  const Shape hidden{rows, d.hidden};
  const Shape f32_normed = mixed ? Shape{0} : hidden;  // mixed precision: bf16 only
  const auto t = workspace_.carve(device, {hidden, f32_normed, {rows}, {rows, d.vocab_rows}, {rows},
                                           {2, rows}, {rows}, {rows}, hidden});
  x = t[0], rstd = t[2], logits = t[3], lse = t[4], sums = t[5];
  logprob = t[6], dlogprob = t[7], d_normed = t[8];
  if (mixed) {
    const auto h = workspace_bf16_.carve(device, {hidden, {rows, d.vocab_rows}}, 1, DType::BF16);
    normed_bf16 = h[0], dlogits_bf16 = h[1];
    normed = Tensor();
  } else {
    normed = t[1];
    normed_bf16 = dlogits_bf16 = Tensor();
  }
}

void lm_head_logits(const ModelContext& ctx, const HeadWeights& w, HeadActivations& a) {
  const TpDims& d = ctx.dims;
  const std::int64_t n = a.x.size(0);
  rmsnorm_for_products(ctx, a.normed, a.normed_bf16, a.rstd.f32(), a.x.f32(), w.norm, n);
  p::copy_to_tp_region_forward(ctx.tp, products_input(a.normed, a.normed_bf16),
                               static_cast<std::size_t>(n * d.hidden));
  linear_forward(ctx, a.logits.f32(), a.normed, a.normed_bf16, w.head, w.head_bf16, n, d.hidden,
                 d.vocab_rows, true);
}

void lm_head_forward(const ModelContext& ctx, const HeadWeights& w, const std::int32_t* targets,
                     HeadActivations& a) {
  const auto& k = ctx.k;
  const TpDims& d = ctx.dims;
  const std::int64_t n = a.x.size(0);
  lm_head_logits(ctx, w, a);

  float* row_max = a.lse.f32();
  k.logits_max(row_max, a.logits.f32(), n, d.vocab_rows, d.vocab_valid);
  ctx.tp.all_reduce(row_max, static_cast<std::size_t>(n), parallel::ReduceOp::Max);
  float* sums = a.sums.f32();  // [sumexp | target logit], one all-reduce for both
  k.logits_sumexp_target(sums, sums + n, a.logits.f32(), row_max, targets, n, d.vocab_rows,
                         d.vocab_valid, d.vocab_start);
  ctx.tp.all_reduce(sums, static_cast<std::size_t>(2 * n));
  k.logprob_from_sums(a.logprob.f32(), row_max, sums, targets, n);  // row_max becomes the lse
}

void lm_head_backward(const ModelContext& ctx, const HeadWeights& w, Tensor& norm_grad,
                      Tensor& head_grad, const std::int32_t* targets, HeadActivations& a,
                      const Tensor& dx) {
  const auto& k = ctx.k;
  const TpDims& d = ctx.dims;
  const std::int64_t n = a.x.size(0);
  float* dlogits = a.logits.f32();  // in place: the logits are not needed afterwards
  k.logprob_backward(dlogits, a.logits.f32(), a.lse.f32(), targets, a.dlogprob.f32(), n, d.vocab_rows,
                     d.vocab_valid, d.vocab_start);
  const Tensor& d_normed = a.d_normed;
  linear_backward(ctx, d_normed.f32(), head_grad.f32(), dlogits, a.dlogits_bf16, a.normed,
                  a.normed_bf16, w.head, w.head_bf16, n, d.hidden, d.vocab_rows, false);
  p::copy_to_tp_region_backward(ctx.tp, d_normed.f32(), static_cast<std::size_t>(n * d.hidden));
  dx.zero_();
  k.rmsnorm_backward(dx.f32(), norm_grad.f32(), d_normed.f32(), a.x.f32(), w.norm.f32(),
                     a.rstd.f32(), n, d.hidden);
}

}  // namespace spin::model
