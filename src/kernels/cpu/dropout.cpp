// LoRA's dropout on the CPU: the mask drawn four columns at a time (one Philox block per global
// column group), as core/philox_rounds.h's dropout_keeps defines it.
#include "core/dtype.h"
#include "core/philox_rounds.h"
#include "kernels/cpu/cpu_kernels.h"

namespace spin::kernels {

namespace {

// f(i, c, keep) for every element of the rows x cols block.
template <class F>
void for_each_kept(Index rows, Index cols, const Kernels::DropoutMask& mask, F f) {
  for (Index i = 0; i < rows; ++i) {
    bool keep[4] = {};
    for (Index c = 0; c < cols; ++c) {
      const auto column = static_cast<std::uint64_t>(mask.col_offset + c);
      if (c == 0 || column % 4 == 0) {
        dropout_keeps(mask.seed, static_cast<std::uint64_t>(mask.row_keys[i]), mask.site, column / 4, mask.p, keep);
      }
      f(i * cols + c, keep[column % 4]);
    }
  }
}

}  // namespace

void CpuKernels::dropout(float* y, const float* x, Index rows, Index cols, const DropoutMask& mask,
                         bool accumulate) const {
  const float scale = mask.scale();
  for_each_kept(rows, cols, mask, [&](Index e, bool kept) {
    const float v = kept ? x[e] * scale : 0.0f;
    y[e] = accumulate ? y[e] + v : v;
  });
}

void CpuKernels::dropout_bf16(std::uint16_t* y, const std::uint16_t* x, Index rows, Index cols,
                              const DropoutMask& mask) const {
  const float scale = mask.scale();
  for_each_kept(rows, cols, mask,
                [&](Index e, bool kept) { y[e] = f32_to_bf16(kept ? bf16_to_f32(x[e]) * scale : 0.0f); });
}

}  // namespace spin::kernels
