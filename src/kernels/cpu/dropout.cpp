// LoRA's dropout on the CPU: the mask drawn four columns at a time (one Philox block per global
// column group), as core/philox_rounds.h's dropout_keeps defines it. Ten Philox rounds for four
// elements outweigh the masking itself, so a row's blocks are computed across groups in SIMD
// lanes, compiled for AVX-512, AVX2 and the baseline and chosen at load time (integer arithmetic:
// every instruction set decides the same bits).
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "core/philox_rounds.h"
#include "kernels/cpu/cpu_kernels.h"

namespace spin::kernels {

namespace {

// Versions for AVX-512, AVX2 and the baseline, chosen at load time by an ifunc resolver -- except
// under ThreadSanitizer, whose runtime is not up yet when the loader runs resolvers (the
// instrumented resolver crashes: the emulated CUDA kernels' race check builds with it).
#if defined(__SANITIZE_THREAD__)
#define SPIN_CPU_CLONES
#else
#define SPIN_CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif

// Bit j of bits[g]: whether global column 4 (first + g) + j survives, for `groups` groups (one
// contiguous store a group: the loop vectorises).
SPIN_CPU_CLONES
void group_keeps(std::uint64_t seed, std::uint64_t row_key, std::uint32_t site, Index first, Index groups, float p,
                 std::uint8_t* bits) {
#pragma omp simd
  for (Index g = 0; g < groups; ++g) {
    bits[g] = static_cast<std::uint8_t>(dropout_keeps(seed, row_key, site, static_cast<std::uint64_t>(first + g), p));
  }
}

// f(i, factor) for every row i of the rows x cols block, factor[c] its column c's: 1 / (1 - p) kept,
// 0 dropped (x times 0, as PyTorch's x * mask / (1 - p): -0 for a negative x, NaN stays NaN).
template <class F>
void for_each_row(Index rows, Index cols, const Kernels::DropoutMask& mask, F f) {
  const Index first = mask.col_offset / 4, groups = dropout_groups(mask.col_offset, cols);
  const Index skip = mask.col_offset - 4 * first;  // columns of the first group before ours
  // The four factors of each 4-bit pattern, copied a group at a time.
  float patterns[16][4];
  for (int b = 0; b < 16; ++b) {
    for (int j = 0; j < 4; ++j) patterns[b][j] = (b >> j & 1) != 0 ? mask.scale() : 0.0f;
  }
  std::vector<std::uint8_t> bits(static_cast<std::size_t>(groups));
  std::vector<float> factor(static_cast<std::size_t>(4 * groups));
  for (Index i = 0; i < rows; ++i) {
    group_keeps(mask.seed, static_cast<std::uint64_t>(mask.row_keys[i]), mask.site, first, groups, mask.p, bits.data());
    for (std::size_t g = 0; g < bits.size(); ++g) std::memcpy(&factor[4 * g], patterns[bits[g]], sizeof(patterns[0]));
    f(i, factor.data() + skip);
  }
}

}  // namespace

void CpuKernels::dropout(float* y, const float* x, Index rows, Index cols, const DropoutMask& mask,
                         bool accumulate) const {
  if (rows * cols == 0) return;
  for_each_row(rows, cols, mask, [&](Index i, const float* factor) {
    const float* xi = x + i * cols;
    float* yi = y + i * cols;
    if (accumulate) {
      for (Index c = 0; c < cols; ++c) yi[c] += xi[c] * factor[c];
    } else {
      for (Index c = 0; c < cols; ++c) yi[c] = xi[c] * factor[c];
    }
  });
}

void CpuKernels::dropout_bf16(std::uint16_t* y, const std::uint16_t* x, Index rows, Index cols,
                              const DropoutMask& mask) const {
  if (rows * cols == 0) return;
  for_each_row(rows, cols, mask, [&](Index i, const float* factor) {
    for (Index c = 0; c < cols; ++c) y[i * cols + c] = f32_to_bf16(bf16_to_f32(x[i * cols + c]) * factor[c]);
  });
}

}  // namespace spin::kernels
