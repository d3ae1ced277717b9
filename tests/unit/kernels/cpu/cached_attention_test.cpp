#include <gtest/gtest.h>

#include "common/test_util.h"
#include "core/dtype.h"
#include "core/error.h"
#include "kernels/cpu/cpu_kernels.h"
#include "unit/kernels/reference.h"

namespace spin::kernels {
namespace {

// Two sequences (7 and 4 tokens) stored in cache slots 2 and 0 of a 3-slot, 9-position cache.
// Whatever split of a sequence into cached prefix and new rows, the new rows' outputs equal
// those of full causal attention over the sequence, under `scores`.
void expect_cached_matches_full_attention(AttentionScores scores) {
  const CpuKernels k;
  const int heads = 4, kvh = 2, hd = 8, capacity = 9;
  const std::vector<Index> cu = {0, 7, 11};
  const std::vector<Index> slot_of = {2, 0};
  const auto q = testing::random_vector(11 * heads * hd, 1);
  const auto kk = testing::random_vector(11 * kvh * hd, 2);
  const auto vv = testing::random_vector(11 * kvh * hd, 3);
  const auto full = testing::ref::attention(testing::to_double(q), testing::to_double(kk),
                                            testing::to_double(vv), cu, heads, kvh, hd, nullptr, scores.scale,
                                            scores.softcap, static_cast<int>(scores.window));
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
                               static_cast<Index>(first.size()), capacity, heads, kvh, hd, scores);
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
                             kvh, hd, scores);
  testing::expect_close(out, want, 1e-5, 1e-6, "decode step");
}

TEST(CachedAttention, MatchesFullCausalAttentionForAnySplitIntoPrefixAndNewRows) {
  expect_cached_matches_full_attention(AttentionScores::standard(8));
}

// Gemma 2's scores: its own scale and a cap (0.6: it bends these inputs' scores).
TEST(CachedAttention, CappedScoresMatchFullCausalAttention) { expect_cached_matches_full_attention({0.8f, 0.6f}); }

// A sliding window of 3 keys (the 7-token sequence's later rows see neither the cached prefix's
// start nor the runs' first keys), with and without a cap: the rows see what they would in full
// windowed attention.
TEST(CachedAttention, SlidingWindowsMatchFullWindowedAttention) {
  expect_cached_matches_full_attention({0.35f, 0.0f, 3});
  expect_cached_matches_full_attention({0.8f, 0.6f, 3});
}

// Mixed precision: scatter_rows_bf16 puts bf16 rows where they are asked, and attention over
// bf16 q and cache is the float32 computation on the widened values with its output rounded to
// bf16, exactly.
TEST(CachedAttention, Bf16IsTheFloat32ComputationOnTheWidenedValuesRounded) {
  const CpuKernels k;
  const Index heads = 4, kvh = 2, hd = 8, capacity = 9, slots = 2, width = kvh * hd, cells = slots * capacity;
  const auto rounded = [&](std::size_t n, std::uint32_t seed) {
    const auto x = testing::random_vector(n, seed);
    std::vector<std::uint16_t> x16(n);
    k.to_bf16(x16.data(), x.data(), static_cast<Index>(n));
    return x16;
  };
  const auto widen = [](const std::vector<std::uint16_t>& x) {
    std::vector<float> out(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) out[i] = bf16_to_f32(x[i]);
    return out;
  };
  // The cache filled through scatter_rows_bf16 in reverse order of its cells.
  const auto keys = rounded(static_cast<std::size_t>(cells * width), 31);
  const auto values = rounded(static_cast<std::size_t>(cells * width), 32);
  std::vector<Index> reversed(static_cast<std::size_t>(cells));
  for (Index i = 0; i < cells; ++i) reversed[static_cast<std::size_t>(i)] = cells - 1 - i;
  std::vector<std::uint16_t> k16(keys.size()), v16(values.size());
  k.scatter_rows_bf16(k16.data(), keys.data(), reversed.data(), cells, width);
  k.scatter_rows_bf16(v16.data(), values.data(), reversed.data(), cells, width);
  for (Index i = 0; i < cells; ++i) {
    for (Index c = 0; c < width; ++c) {
      ASSERT_EQ(k16[static_cast<std::size_t>((cells - 1 - i) * width + c)], keys[static_cast<std::size_t>(i * width + c)]);
    }
  }
  // A prefill of 4 rows in slot 1 and a decode row at position 6 of slot 0.
  const std::vector<Index> row_begin = {0, 4, 5}, slot = {1, 0}, first = {0, 6};
  const auto q16 = rounded(static_cast<std::size_t>(5 * heads * hd), 33);
  std::vector<std::uint16_t> got(q16.size());
  std::vector<float> want(q16.size());
  k.cached_attention_forward_bf16(got.data(), q16.data(), k16.data(), v16.data(), row_begin.data(), slot.data(),
                                  first.data(), 2, capacity, heads, kvh, hd, AttentionScores::standard(hd));
  k.cached_attention_forward(want.data(), widen(q16).data(), widen(k16).data(), widen(v16).data(), row_begin.data(),
                             slot.data(), first.data(), 2, capacity, heads, kvh, hd, AttentionScores::standard(hd));
  for (std::size_t i = 0; i < want.size(); ++i) ASSERT_EQ(got[i], f32_to_bf16(want[i])) << i;
}

// A ring (model/kv_cache.h): a slot of window + chunk - 1 rows holding position p at row p mod
// capacity, fed a 13-token sequence chunk by chunk as generation feeds it (a chunk's rows
// scattered, then attended), the chunks wrapping around the ring's end: every row's output is
// full windowed attention's, with and without a cap; in bf16 exactly the float32 computation's
// rounded; a chunk that would read more positions than the ring holds is refused.
TEST(CachedAttention, RingCachesOfAWindowAndAChunkMatchFullWindowedAttention) {
  const CpuKernels k;
  const Index heads = 4, kvh = 2, hd = 8, len = 13, width = kvh * hd, slot = 1;
  // bf16-exact inputs, so that the float32 computation reads what the bf16 one widens.
  const auto exact = [&](std::size_t n, std::uint32_t seed) {
    auto x = testing::random_vector(n, seed);
    for (float& v : x) v = bf16_to_f32(f32_to_bf16(v));
    return x;
  };
  const auto to16 = [&](const std::vector<float>& x) {
    std::vector<std::uint16_t> out(x.size());
    k.to_bf16(out.data(), x.data(), static_cast<Index>(x.size()));
    return out;
  };
  const auto q = exact(len * heads * hd, 41), kk = exact(len * width, 42), vv = exact(len * width, 43);
  const auto q16 = to16(q), kk16 = to16(kk), vv16 = to16(vv);
  const std::vector<Index> cu = {0, len};
  for (const AttentionScores scores : {AttentionScores{0.35f, 0.0f, 3}, AttentionScores{0.8f, 0.6f, 4}}) {
    const auto full = testing::ref::attention(testing::to_double(q), testing::to_double(kk), testing::to_double(vv),
                                              cu, heads, kvh, hd, nullptr, scores.scale, scores.softcap,
                                              static_cast<int>(scores.window));
    for (const Index chunk : {1, 2, 3, 5}) {
      SCOPED_TRACE(cat("window ", scores.window, ", chunks of ", chunk));
      const Index capacity = scores.window + chunk - 1, cells = 2 * capacity * width;
      std::vector<float> k_cache(static_cast<std::size_t>(cells), 99.0f), v_cache = k_cache;
      std::vector<std::uint16_t> k16(k_cache.size()), v16(k_cache.size());
      std::vector<float> out(q.size());
      std::vector<std::uint16_t> out16(q.size());
      for (Index first = 0; first < len; first += chunk) {
        const Index rows = std::min(chunk, len - first);
        std::vector<Index> cache_rows;
        for (Index p = first; p < first + rows; ++p) cache_rows.push_back(slot * capacity + p % capacity);
        k.scatter_rows(k_cache.data(), kk.data() + first * width, cache_rows.data(), rows, width);
        k.scatter_rows(v_cache.data(), vv.data() + first * width, cache_rows.data(), rows, width);
        k.scatter_rows_bf16(k16.data(), kk16.data() + first * width, cache_rows.data(), rows, width);
        k.scatter_rows_bf16(v16.data(), vv16.data() + first * width, cache_rows.data(), rows, width);
        const std::vector<Index> row_begin = {0, rows}, slots = {slot}, firsts = {first};
        const Index at = first * heads * hd;
        k.cached_attention_forward(out.data() + at, q.data() + at, k_cache.data(), v_cache.data(), row_begin.data(),
                                   slots.data(), firsts.data(), 1, capacity, heads, kvh, hd, scores);
        k.cached_attention_forward_bf16(out16.data() + at, q16.data() + at, k16.data(), v16.data(), row_begin.data(),
                                        slots.data(), firsts.data(), 1, capacity, heads, kvh, hd, scores);
      }
      // A chunk one row longer than the ring was sized for.
      const std::vector<Index> longer = {0, chunk + 1}, slots = {slot}, earlier = {len - chunk - 1};
      EXPECT_THROW(k.cached_attention_forward(out.data(), q.data(), k_cache.data(), v_cache.data(), longer.data(),
                                              slots.data(), earlier.data(), 1, capacity, heads, kvh, hd, scores),
                   Error);
      testing::expect_close(out, full, 1e-5, 1e-6, "ring");
      for (std::size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out16[i], f32_to_bf16(out[i])) << i;
    }
  }
}

}  // namespace
}  // namespace spin::kernels
