#include <gtest/gtest.h>

#include "common/test_util.h"
#include "kernels/cpu/cpu_kernels.h"
#include "unit/kernels/reference.h"

namespace spin::kernels {
namespace {

// Two sequences (7 and 4 tokens) stored in cache slots 2 and 0 of a 3-slot, 9-position cache.
// Whatever split of a sequence into cached prefix and new rows, the new rows' outputs equal
// those of full causal attention over the sequence.
TEST(CachedAttention, MatchesFullCausalAttentionForAnySplitIntoPrefixAndNewRows) {
  const CpuKernels k;
  const int heads = 4, kvh = 2, hd = 8, capacity = 9;
  const std::vector<Index> cu = {0, 7, 11};
  const std::vector<Index> slot_of = {2, 0};
  const auto q = testing::random_vector(11 * heads * hd, 1);
  const auto kk = testing::random_vector(11 * kvh * hd, 2);
  const auto vv = testing::random_vector(11 * kvh * hd, 3);
  const auto full = testing::ref::attention(testing::to_double(q), testing::to_double(kk),
                                            testing::to_double(vv), cu, heads, kvh, hd);
  std::vector<float> k_cache(3 * capacity * kvh * hd, 99.0f), v_cache = k_cache;
  std::vector<Index> rows;
  for (int s = 0; s < 2; ++s)
    for (Index p = 0; p < cu[s + 1] - cu[s]; ++p) rows.push_back(slot_of[s] * capacity + p);
  k.scatter_rows(k_cache.data(), kk.data(), rows.data(), 11, kvh * hd);
  k.scatter_rows(v_cache.data(), vv.data(), rows.data(), 11, kvh * hd);

  // 0 and 1 cached positions leave runs of 7/4 and 6/3 rows (sgemm and direct paths mixed);
  // 3 and 5 leave short runs only (direct path).
  for (Index cached : {0, 1, 3, 5}) {
    // New rows: positions [cached, len) of each sequence, packed.
    std::vector<float> q_new;
    std::vector<Index> row_begin = {0}, first, slots;
    std::vector<double> want;
    for (int s = 0; s < 2; ++s) {
      const Index len = cu[s + 1] - cu[s];
      if (cached >= len) continue;
      for (Index p = cached; p < len; ++p) {
        const auto at = static_cast<std::size_t>((cu[s] + p) * heads * hd);
        q_new.insert(q_new.end(), q.begin() + at, q.begin() + at + heads * hd);
        want.insert(want.end(), full.begin() + at, full.begin() + at + heads * hd);
      }
      row_begin.push_back(row_begin.back() + len - cached);
      first.push_back(cached);
      slots.push_back(slot_of[static_cast<std::size_t>(s)]);
    }
    std::vector<float> out(q_new.size());
    k.cached_attention_forward(out.data(), q_new.data(), k_cache.data(), v_cache.data(),
                               row_begin.data(), slots.data(), first.data(),
                               static_cast<Index>(first.size()), capacity, heads, kvh, hd);
    testing::expect_close(out, want, 1e-5, 1e-6, "cached attention");
  }
  // Decode: only the last row of each sequence.
  std::vector<float> q_last, out(2 * heads * hd);
  std::vector<double> want;
  for (int s = 0; s < 2; ++s) {
    const auto at = static_cast<std::size_t>((cu[s + 1] - 1) * heads * hd);
    q_last.insert(q_last.end(), q.begin() + at, q.begin() + at + heads * hd);
    want.insert(want.end(), full.begin() + at, full.begin() + at + heads * hd);
  }
  const std::vector<Index> row_begin = {0, 1, 2}, first = {6, 3};
  k.cached_attention_forward(out.data(), q_last.data(), k_cache.data(), v_cache.data(),
                             row_begin.data(), slot_of.data(), first.data(), 2, capacity, heads,
                             kvh, hd);
  testing::expect_close(out, want, 1e-5, 1e-6, "decode step");
}

}  // namespace
}  // namespace spin::kernels
