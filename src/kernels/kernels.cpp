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

void Kernels::rope_qk_forward(float* q, float* k, const std::int32_t* positions, const float* cos, const float* sin,
                              Index n, Index heads, Index kv_heads, Index head_dim, Index rotary_dim,
                              RopePairs pairs) const {
  rope_forward(q, positions, cos, sin, n, heads, head_dim, rotary_dim, pairs);
  rope_forward(k, positions, cos, sin, n, kv_heads, head_dim, rotary_dim, pairs);
}

void Kernels::rope_qk_forward_bf16(std::uint16_t* q, std::uint16_t* k, const std::int32_t* positions, const float* cos,
                                   const float* sin, Index n, Index heads, Index kv_heads, Index head_dim,
                                   Index rotary_dim, RopePairs pairs) const {
  rope_forward_bf16(q, positions, cos, sin, n, heads, head_dim, rotary_dim, pairs);
  rope_forward_bf16(k, positions, cos, sin, n, kv_heads, head_dim, rotary_dim, pairs);
}

void Kernels::scatter_kv_rows(float* keys, float* values, const float* k, const float* v, const Index* rows, Index n,
                              Index width) const {
  scatter_rows(keys, k, rows, n, width);
  scatter_rows(values, v, rows, n, width);
}

void Kernels::scatter_kv_rows_bf16(std::uint16_t* keys, std::uint16_t* values, const std::uint16_t* k,
                                   const std::uint16_t* v, const Index* rows, Index n, Index width) const {
  scatter_rows_bf16(keys, k, rows, n, width);
  scatter_rows_bf16(values, v, rows, n, width);
}

}  // namespace spin::kernels
