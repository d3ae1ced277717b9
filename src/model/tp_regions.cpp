#include "model/tp_regions.h"

#include "parallel/tp_mappings.h"

namespace spin::model {

namespace p = spin::parallel;

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
