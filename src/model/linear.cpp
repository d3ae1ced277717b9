#include "model/linear.h"

#include "core/error.h"

namespace spin::model {

void linear_forward(const ModelContext& ctx, float* y, const Tensor& x, const Tensor& x16,
                    const Tensor& w, const Tensor& w16, std::int64_t n, std::int64_t in,
                    std::int64_t out, bool rounded) {
  if (!w16.defined()) {
    ctx.k.linear_forward(y, x.f32(), w.f32(), n, in, out);
    return;
  }
  if (!rounded) ctx.k.to_bf16(x16.bf16(), x.f32(), n * in);
  ctx.k.linear_forward_bf16(y, x16.bf16(), w16.bf16(), n, in, out);
}

void linear_forward_accumulate(const ModelContext& ctx, float* y, const Tensor& x, const Tensor& x16, const Tensor& w,
                               const Tensor& w16, std::int64_t n, std::int64_t in, std::int64_t out) {
  if (!w16.defined()) {
    ctx.k.gemm(false, true, n, out, in, 1.0f, x.f32(), in, w.f32(), in, 1.0f, y, out);
    return;
  }
  ctx.k.gemm_bf16(false, true, n, out, in, 1.0f, x16.bf16(), in, w16.bf16(), in, 1.0f, y, out);
}

void linear_forward_into(const ModelContext& ctx, const Tensor& y, const Tensor& y16,
                         const Tensor& x, const Tensor& x16, const Tensor& w, const Tensor& w16,
                         const Tensor& bias, std::int64_t n, std::int64_t in, std::int64_t out) {
  const float* b = bias.defined() ? bias.f32() : nullptr;
  if (y16.defined()) {
    ctx.k.linear_forward_bf16_out(y16.bf16(), x16.bf16(), w16.bf16(), b, n, in, out);
    return;
  }
  linear_forward(ctx, y.f32(), x, x16, w, w16, n, in, out, true);
  if (b != nullptr) ctx.k.add_bias(y.f32(), b, n, out);
}

void bias_backward(const ModelContext& ctx, const Tensor& bias_grad, const float* dy, std::int64_t n,
                   std::int64_t out) {
  if (bias_grad.defined()) ctx.k.bias_backward(bias_grad.f32(), dy, n, out);
}

void norm_for_products(const ModelContext& ctx, const Tensor& out, const Tensor& out16, float* rstd, const float* x,
                       const NormParams& norm, std::int64_t n) {
  const std::int64_t h = ctx.dims.hidden;
  const float eps = ctx.config.rms_norm_eps;
  if (ctx.config.layer_norm) {
    const float *w = f32_or_null(norm.weight), *b = f32_or_null(norm.bias);
    if (out16.defined()) {
      ctx.k.layernorm_forward_bf16(out16.bf16(), rstd, x, w, b, n, h, eps);
    } else {
      ctx.k.layernorm_forward(out.f32(), rstd, x, w, b, n, h, eps);
    }
    return;
  }
  const Tensor& w = norm.weight;
  if (!w.defined()) {  // no norm (OLMo 2's halves): the products read x itself, or its bf16 rounding
    require(out16.defined() || out.f32() == x, "norm_for_products: without a norm, out must be x");
    if (out16.defined()) ctx.k.to_bf16(out16.bf16(), x, n * h);
    return;
  }
  if (out16.defined()) {
    ctx.k.rmsnorm_forward_bf16(out16.bf16(), rstd, x, w.f32(), n, h, eps, ctx.config.norm_weight_offset);
  } else {
    ctx.k.rmsnorm_forward(out.f32(), rstd, x, w.f32(), n, h, eps, ctx.config.norm_weight_offset);
  }
}

void linear_backward(const ModelContext& ctx, float* dx, float* dw, const float* dy,
                     const Tensor& dy16, const Tensor& x, const Tensor& x16, const Tensor& w,
                     const Tensor& w16, std::int64_t n, std::int64_t in, std::int64_t out,
                     bool accumulate_dx) {
  if (!w16.defined()) {
    ctx.k.linear_backward(dx, dw, dy, x.f32(), w.f32(), n, in, out, accumulate_dx);
    return;
  }
  ctx.k.linear_backward_bf16(dx, dw, dy, dy16.bf16(), x16.bf16(), w16.bf16(), n, in, out,
                             accumulate_dx);
}

}  // namespace spin::model
