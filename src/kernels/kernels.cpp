#include "kernels/kernels.h"

#include <algorithm>

#include "core/error.h"

namespace spin::kernels {

CachedSpan cached_span(const AttentionScores& scores, std::int64_t first, std::int64_t rows, std::int64_t capacity) {
  CachedSpan s{};
  s.first_key = scores.first_key(first);
  s.keys = first + rows - s.first_key;
  require(s.keys <= capacity, "cached attention: ", rows, " rows from position ", first, " read ", s.keys,
          " cached positions, more than a slot's ", capacity, " rows");
  s.start = s.first_key % capacity;
  s.head = std::min(s.keys, capacity - s.start);
  s.tail = s.keys - s.head;
  return s;
}

Index attention_probs_size(const Index* cu_seqlens, Index num_seqs, Index heads) {
  Index total = 0;
  for (Index s = 0; s < num_seqs; ++s) {
    const Index len = cu_seqlens[s + 1] - cu_seqlens[s];
    total += len * len;
  }
  return total * heads;
}

}  // namespace spin::kernels
