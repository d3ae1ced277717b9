// One linear layer, y = x W^T, in the precision of its weights: float32 when W has no bf16 copy,
// otherwise bf16 operands with float32 accumulation and a float32 result (mixed precision). The
// decoder layer's projections and the LM head all go through these two functions.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "model/context.h"

namespace spin::model {

// x16 receives bf16(x) (kept for the backward) unless `rounded` says it already holds it (a
// norm or SwiGLU wrote it in bf16; x is then not read). x16 and w16 are undefined in float32,
// where `rounded` means nothing.
void linear_forward(const ModelContext& ctx, float* y, const Tensor& x, const Tensor& x16,
                    const Tensor& w, const Tensor& w16, std::int64_t n, std::int64_t in,
                    std::int64_t out, bool rounded = false);

// y += x W^T (the product added to what y holds, in the same precision as linear_forward; the
// input x, or x16 already rounded): a parallel residual's MLP output joining the attention's
// partial sums before their one reduction.
void linear_forward_accumulate(const ModelContext& ctx, float* y, const Tensor& x, const Tensor& x16, const Tensor& w,
                               const Tensor& w16, std::int64_t n, std::int64_t in, std::int64_t out);

// y = x W^T + bias into y (float32), or in mixed precision into y16 alone, rounded to bf16 as
// written (an output only bf16-reading kernels consume). The input: x, or x16 already rounded.
// `bias` ([out], float32) may be undefined.
void linear_forward_into(const ModelContext& ctx, const Tensor& y, const Tensor& y16,
                         const Tensor& x, const Tensor& x16, const Tensor& w, const Tensor& w16,
                         const Tensor& bias, std::int64_t n, std::int64_t in, std::int64_t out);

// A norm's parameters, each undefined where the norm has none: RMSNorm's weight; LayerNorm's
// weight and bias (StableLM's), or neither (OLMo's).
struct NormParams {
  Tensor weight, bias;
};

// out = rmsnorm(x) over rows of ctx.dims.hidden, for products to read: float32, or in mixed
// precision (out16 defined) only its bf16 rounding -- no float32 copy is made. With
// ModelConfig::layer_norm a LayerNorm instead (OLMo's without parameters, StableLM's with both).
// Otherwise, without a norm weight (OLMo 2's halves have no input norm) the products read x:
// out must be x itself (decoder_layer's norm_output), and out16 receives its bf16 rounding.
void norm_for_products(const ModelContext& ctx, const Tensor& out, const Tensor& out16, float* rstd, const float* x,
                       const NormParams& w, std::int64_t n);

// A tensor's float32 data, or null where it is undefined (a frozen weight's gradient).
inline float* f32_or_null(const Tensor& t) { return t.defined() ? t.f32() : nullptr; }

// The buffer holding a product's input: x16 in mixed precision, else x.
inline const void* products_input(const Tensor& x, const Tensor& x16) {
  return x16.defined() ? x16.raw() : x.raw();
}

// dbias += dy's column sums, for a layer with a bias (`bias_grad` defined).
void bias_backward(const ModelContext& ctx, const Tensor& bias_grad, const float* dy, std::int64_t n,
                   std::int64_t out);

// dx (= or +=) dy W, dW += dy^T x (dW null: a frozen weight, LoRA's base); in mixed precision dy16 is the scratch for bf16(dy)
// (n * out values at least).
void linear_backward(const ModelContext& ctx, float* dx, float* dw, const float* dy,
                     const Tensor& dy16, const Tensor& x, const Tensor& x16, const Tensor& w,
                     const Tensor& w16, std::int64_t n, std::int64_t in, std::int64_t out,
                     bool accumulate_dx);

}  // namespace spin::model
