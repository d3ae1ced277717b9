// One linear layer, y = x W^T, in the precision of its weights: float32 when W has no bf16 copy,
// otherwise bf16 operands with float32 accumulation and a float32 result (mixed precision). The
// decoder layer's projections and the LM head all go through these two functions.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "model/context.h"

namespace spin::model {

// x16 receives bf16(x) (kept for the backward) unless `rounded` says it already holds it
// (q, k and v share one input). x16 and w16 are undefined in float32.
void linear_forward(const ModelContext& ctx, float* y, const Tensor& x, const Tensor& x16,
                    const Tensor& w, const Tensor& w16, std::int64_t n, std::int64_t in,
                    std::int64_t out, bool rounded = false);

// dx (= or +=) dy W, dW += dy^T x; in mixed precision dy16 is the scratch for bf16(dy)
// (n * out values at least).
void linear_backward(const ModelContext& ctx, float* dx, float* dw, const float* dy,
                     const Tensor& dy16, const Tensor& x, const Tensor& x16, const Tensor& w,
                     const Tensor& w16, std::int64_t n, std::int64_t in, std::int64_t out,
                     bool accumulate_dx);

}  // namespace spin::model
