// The softmax of one row of attention scores over its first `seen` entries (the keys the query
// sees), capped first when cap > 0 (kernels::AttentionScores), the rest of its `width`
// entries set to 0 -- the step attention.cpp and cached_attention.cpp share.
#pragma once

#include <algorithm>

#include "kernels/cpu/vec_math.h"
#include "kernels/kernels.h"

namespace spin::kernels::cpu {

inline void softmax_row(float* row, Index seen, Index width, float cap) {
  if (cap > 0.0f) {
#pragma omp simd
    for (Index j = 0; j < seen; ++j) row[j] = softcap(row[j], cap);
  }
  float m = row[0];
  for (Index j = 1; j < seen; ++j) m = std::max(m, row[j]);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (Index j = 0; j < seen; ++j) {
    row[j] = exp_approx(row[j] - m);
    sum += row[j];
  }
  const float inv = 1.0f / sum;
#pragma omp simd
  for (Index j = 0; j < seen; ++j) row[j] *= inv;
  std::fill(row + seen, row + width, 0.0f);
}

}  // namespace spin::kernels::cpu
