// The output of a row-parallel region (o_proj, down_proj, the vocab-parallel embedding): each
// TP rank computes partial sums of every row, which the group adds up -- with an all-reduce
// into every rank's rows (Megatron's reduce_from_tensor_model_parallel_region), or under
// sequence parallelism (BatchGeometry::split) a reduce-scatter into each rank's own rows.
#pragma once

#include "model/context.h"

namespace spin::model {

// Where the partial sums go: `out` itself, or under a split the full-rows scratch (the batch's
// rows; reduce_row_parallel zeroes the pad rows).
inline float* row_parallel_partial(const BatchGeometry& b, float* out) {
  return b.split ? b.split->full.f32() : out;
}

// out = the sum of the group's partial sums: b.residual_rows() rows of ctx.dims.hidden.
void reduce_row_parallel(const ModelContext& ctx, const BatchGeometry& b, float* out);

// The backward: from dx, the gradient of this rank's output rows, the gradient of the partial
// sums (b.rows rows) -- dx itself, or under a split every rank's rows all-gathered into the
// scratch.
const float* row_parallel_grad(const ModelContext& ctx, const BatchGeometry& b, float* dx);

}  // namespace spin::model
