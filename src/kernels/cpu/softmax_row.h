// The softmax of one row of attention scores over its entries [first, seen) (the keys the query
// sees: causal, and within a sliding window -- kernels::AttentionScores), capped first when
// cap > 0, the rest of its `width` entries set to 0 -- the step attention.cpp and
// cached_attention.cpp share.
#pragma once

#include <algorithm>

#include "kernels/cpu/vec_math.h"
#include "kernels/kernels.h"

namespace spin::kernels::cpu {

inline void softmax_row(float* row, Index first, Index seen, Index width, float cap) {
  if (cap > 0.0f) {
#pragma omp simd
    for (Index j = first; j < seen; ++j) row[j] = softcap(row[j], cap);
  }
  float m = row[first];
  for (Index j = first + 1; j < seen; ++j) m = std::max(m, row[j]);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (Index j = first; j < seen; ++j) {
    row[j] = exp_approx(row[j] - m);
    sum += row[j];
  }
  const float inv = 1.0f / sum;
#pragma omp simd
  for (Index j = first; j < seen; ++j) row[j] *= inv;
  std::fill(row, row + first, 0.0f);
  std::fill(row + seen, row + width, 0.0f);
}

}  // namespace spin::kernels::cpu
