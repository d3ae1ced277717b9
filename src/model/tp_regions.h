// The boundaries of the tensor-parallel regions, with and without sequence parallelism
// (BatchGeometry::split; docs/parallelism.md).
//
// The input of a column-parallel region (q/k/v, gate/up, the LM head) is an RMSNorm's output:
// every rank needs all the rows. Each normalises the residual rows it holds; without a split
// those are all of them (Megatron's copy_to_tensor_model_parallel_region: identity forward,
// all-reduce backward), under one they are all-gathered (gather_from_sequence_parallel_region:
// reduce-scatter backward).
//
// The output of a row-parallel region (o_proj, down_proj, the vocab-parallel embedding): each
// TP rank computes partial sums of every row, which the group adds up -- with an all-reduce
// into every rank's rows (reduce_from_tensor_model_parallel_region), or under a split a
// reduce-scatter into each rank's own rows (reduce_scatter_to_sequence_parallel_region).
#pragma once

#include "core/tensor.h"
#include "model/context.h"
#include "model/linear.h"

namespace spin::model {

// The input of a column-parallel region's products: float32 x, or with bf16 products x16 alone.
struct ColumnInput {
  Tensor x, x16;
};

// out (float32), or in mixed precision out16 alone (bf16), = norm(x) (linear.h's
// norm_for_products) of this rank's b.residual_rows() rows (rstd, x: those rows'). Returns the
// products' input: out itself, or under a split every rank's rows all-gathered into
// b.split->gathered.
ColumnInput norm_into_column_parallel(const ModelContext& ctx, const BatchGeometry& b, const Tensor& out,
                                      const Tensor& out16, float* rstd, const float* x, const NormParams& w);

// The products' input again, for their weight gradients in the backward: out itself, or under a
// split gathered once more (Megatron's trade: an all-gather instead of keeping every layer's
// norm outputs whole).
ColumnInput column_input(const ModelContext& ctx, const BatchGeometry& b, const Tensor& out, const Tensor& out16);

// Its backward. d_norm ([b.gathered_rows(), hidden]) holds, in its first b.rows rows, this
// rank's products' gradient of the norm output; summed over the TP group (all rows, or under a
// split this rank's: d_norm's first rows afterwards) it goes through the norm: dx += the input
// gradient, dw's weight and bias += theirs for the parameters `w` has (OLMo's LayerNorm: the input
// gradient alone; without a norm dx += the sum itself). Under a split each rank's parameter
// gradients cover its rows only, so they are summed in d_norm_params ([2, hidden]: the weight's,
// the bias's) and all-reduced, in one call, before they are added.
void column_parallel_norm_backward(const ModelContext& ctx, const BatchGeometry& b, const Tensor& d_norm,
                                   const Tensor& d_norm_params, float* dx, const NormParams& dw, const float* x,
                                   const NormParams& w, const float* rstd);

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
