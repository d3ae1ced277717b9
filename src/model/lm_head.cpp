#include "model/lm_head.h"

#include <algorithm>

#include "core/error.h"
#include "model/linear.h"
#include "model/tp_regions.h"

namespace spin::model {

void HeadActivations::allocate(const TpDims& d, const BatchGeometry& b, Device device, bool mixed,
                               std::int64_t chunk_rows) {
  const std::int64_t rows = b.rows;
  chunk = chunk_rows > 0 ? std::min(chunk_rows, rows) : rows;
  const Shape residual{b.residual_rows(), d.hidden}, gathered{b.gathered_rows(), d.hidden};
  const Shape f32_normed = mixed ? Shape{0} : residual;  // mixed precision: bf16 only
  const auto t = workspace_.carve(device, {residual,
                                           f32_normed,
                                           {b.residual_rows()},
                                           {chunk, d.vocab_rows},
                                           {rows},
                                           {2, rows},
                                           {rows},
                                           {rows},
                                           gathered,
                                           {b.split ? 2 * d.hidden : 0}});
  x = t[0], rstd = t[2], logits = t[3], lse = t[4], sums = t[5];
  logprob = t[6], dlogprob = t[7], d_normed = t[8];
  d_norm_weight = b.split ? t[9] : Tensor();
  if (mixed) {
    const auto h = workspace_bf16_.carve(device, {residual, {chunk, d.vocab_rows}}, 1, DType::BF16);
    normed_bf16 = h[0], dlogits_bf16 = h[1];
    normed = Tensor();
  } else {
    normed = t[1];
    normed_bf16 = dlogits_bf16 = Tensor();
  }
}

namespace {

// Rows [first, first + count) of a [rows, hidden] tensor; undefined stays undefined.
Tensor row_range(const Tensor& t, std::int64_t first, std::int64_t count, std::int64_t hidden) {
  return t.defined() ? t.view(first * hidden, {count, hidden}) : t;
}

// Granite's logits_scaling, Cohere's logit_scale: the logits of `rows` rows (or their gradient) times
// ModelConfig::logits_factor -- for Granite's published 8 and 16 exactly transformers' division.
void scale_logits(const ModelContext& ctx, float* logits, std::int64_t rows) {
  const float f = ctx.config.logits_factor();
  if (f != 1.0f) ctx.k.scale(logits, logits, f, rows * ctx.dims.vocab_rows);
}

// acts.logits = the logits of rows [first, first + count) (a chunk, or all of them).
void chunk_logits(const ModelContext& ctx, const HeadWeights& w, const ColumnInput& in, std::int64_t first,
                  std::int64_t count, HeadActivations& a) {
  const TpDims& d = ctx.dims;
  linear_forward(ctx, a.logits.f32(), row_range(in.x, first, count, d.hidden), row_range(in.x16, first, count, d.hidden),
                 w.head, w.head_bf16, count, d.hidden, d.vocab_rows, true);
  if (w.bias.defined()) ctx.k.add_bias(a.logits.f32(), w.bias.f32(), count, d.vocab_rows);  // Phi's
  const float cap = ctx.config.final_logit_softcapping;  // Gemma 2
  if (cap > 0.0f) ctx.k.softcap_forward(a.logits.f32(), count * d.vocab_rows, cap);
  scale_logits(ctx, a.logits.f32(), count);
}

}  // namespace

void lm_head_logits(const ModelContext& ctx, const HeadWeights& w, const BatchGeometry& b, HeadActivations& a) {
  require(a.chunk >= b.rows, "lm_head_logits: logits for ", b.rows, " rows in a buffer of ", a.chunk);
  const ColumnInput in = norm_into_column_parallel(ctx, b, a.normed, a.normed_bf16, a.rstd.f32(), a.x.f32(), w.norm);
  chunk_logits(ctx, w, in, 0, b.rows, a);
}

void lm_head_forward(const ModelContext& ctx, const HeadWeights& w, const BatchGeometry& b,
                     const std::int32_t* targets, HeadActivations& a) {
  const auto& k = ctx.k;
  const TpDims& d = ctx.dims;
  const std::int64_t n = b.rows;
  const ColumnInput in = norm_into_column_parallel(ctx, b, a.normed, a.normed_bf16, a.rstd.f32(), a.x.f32(), w.norm);
  for (std::int64_t first = 0; first < n; first += a.chunk) {
    const std::int64_t rows = std::min(a.chunk, n - first);
    chunk_logits(ctx, w, in, first, rows, a);
    float* row_max = a.lse.f32() + first;
    k.logits_max(row_max, a.logits.f32(), rows, d.vocab_rows, d.vocab_valid);
    ctx.tp.all_reduce(row_max, static_cast<std::size_t>(rows), parallel::ReduceOp::Max);
    float* sums = a.sums.f32() + 2 * first;  // [sumexp | target logit] of the chunk, one all-reduce for both
    k.logits_sumexp_target(sums, sums + rows, a.logits.f32(), row_max, targets + first, rows, d.vocab_rows,
                           d.vocab_valid, d.vocab_start);
    ctx.tp.all_reduce(sums, static_cast<std::size_t>(2 * rows));
    k.logprob_from_sums(a.logprob.f32() + first, row_max, sums, targets + first, rows);  // row_max becomes the lse
  }
}

void lm_head_backward(const ModelContext& ctx, const HeadWeights& w, const BatchGeometry& b,
                      const NormParams& norm_grad, Tensor& head_grad, const Tensor& bias_grad,
                      const std::int32_t* targets, HeadActivations& a, const Tensor& dx) {
  const auto& k = ctx.k;
  const TpDims& d = ctx.dims;
  const std::int64_t n = b.rows;
  const ColumnInput in = column_input(ctx, b, a.normed, a.normed_bf16);
  for (std::int64_t first = 0; first < n; first += a.chunk) {
    const std::int64_t rows = std::min(a.chunk, n - first);
    if (a.chunk < n) chunk_logits(ctx, w, in, first, rows, a);  // in one chunk they are the forward's
    float* dlogits = a.logits.f32();  // in place: the logits are not needed afterwards
    k.logprob_backward(dlogits, a.logits.f32(), a.lse.f32() + first, targets + first, a.dlogprob.f32() + first, rows,
                       d.vocab_rows, d.vocab_valid, d.vocab_start, ctx.config.final_logit_softcapping);
    scale_logits(ctx, dlogits, rows);  // d loss / d the product's logits
    bias_backward(ctx, bias_grad, dlogits, rows, d.vocab_rows);
    linear_backward(ctx, a.d_normed.f32() + first * d.hidden, head_grad.defined() ? head_grad.f32() : nullptr,
                    dlogits, a.dlogits_bf16,
                    row_range(in.x, first, rows, d.hidden), row_range(in.x16, first, rows, d.hidden), w.head,
                    w.head_bf16, rows, d.hidden, d.vocab_rows, false);
  }
  dx.zero_();
  column_parallel_norm_backward(ctx, b, a.d_normed, a.d_norm_weight, dx.f32(), norm_grad, a.x.f32(), w.norm,
                                a.rstd.f32());
}

}  // namespace spin::model
