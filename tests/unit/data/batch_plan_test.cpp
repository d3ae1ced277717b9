#include "data/batch_plan.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "core/error.h"

namespace spin::data {
namespace {

TEST(BatchPlan, EachEpochIsAPermutationKeyedBySeedAndEpoch) {
  const BatchPlan plan(10, 5, 1, 1, 42);
  std::vector<std::int64_t> epoch0;
  for (std::int64_t b = 0; b < plan.batches_per_epoch(); ++b) {
    const auto batch = plan.global_batch(0, b);
    epoch0.insert(epoch0.end(), batch.begin(), batch.end());
  }
  std::vector<std::int64_t> sorted = epoch0;
  std::sort(sorted.begin(), sorted.end());
  for (std::int64_t i = 0; i < 10; ++i) EXPECT_EQ(sorted[static_cast<std::size_t>(i)], i);
  EXPECT_EQ(plan.global_batch(0, 1), BatchPlan(10, 5, 5, 1, 42).global_batch(0, 1));
  EXPECT_NE(plan.global_batch(0, 0), plan.global_batch(1, 0));  // another epoch, another order
  EXPECT_NE(plan.global_batch(0, 0), BatchPlan(10, 5, 1, 1, 43).global_batch(0, 0));
  EXPECT_EQ(BatchPlan(10, 5, 1, 1, 42, false).global_batch(0, 1),
            (std::vector<std::int64_t>{5, 6, 7, 8, 9}));
}

// Global batch i holds the same samples for every DP size and micro-batch size.
TEST(BatchPlan, RanksSplitTheSameGlobalBatch) {
  const BatchPlan one(24, 12, 12, 1, 9);
  for (auto [dp, micro] : {std::pair{2, 3}, std::pair{4, 1}, std::pair{3, 2}}) {
    const BatchPlan plan(24, 12, micro, dp, 9);
    EXPECT_EQ(plan.micro_batches_per_step(), 12 / (micro * dp));
    std::vector<std::int64_t> joined;
    for (int r = 0; r < dp; ++r)
      for (const auto& mb : plan.micro_batches(1, 1, r)) joined.insert(joined.end(), mb.begin(), mb.end());
    EXPECT_EQ(joined, one.global_batch(1, 1)) << "dp " << dp << ", micro " << micro;
  }
}

TEST(BatchPlan, ImpossibleBatchesAreErrors) {
  try {
    BatchPlan(100, 10, 3, 2, 1);
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "global batch size 10 is not divisible by micro-batch size 3 x "
                           "data-parallel size 2 = 6");
  }
  EXPECT_THROW(BatchPlan(8, 16, 1, 1, 1), Error);
  EXPECT_EQ(BatchPlan(11, 5, 1, 1, 1).dropped_per_epoch(), 1);
}

// Micro-batches by tokens: the same samples in the same order, each micro-batch closed before the
// next sample passes the token or the sample cap, a sample over the token cap alone; without a token
// cap, consecutive micro-batches of the sample cap (the plan's). A replica's share: every dp-th.
TEST(BatchPlan, MicroBatchesByTokensKeepTheSamplesAndTheirOrder) {
  const std::vector<std::int64_t> samples = {7, 3, 9, 1, 4, 2};
  const std::vector<std::int64_t> tokens = {5, 4, 2, 12, 3, 3};
  using Groups = std::vector<std::vector<std::int64_t>>;
  const Groups groups = {{7, 3, 9}, {1, 4, 2}};
  EXPECT_EQ(cut_micro_batches(samples, tokens, 3, 0), groups);
  EXPECT_EQ(cut_micro_batches(samples, {}, 3, 0), groups) << "no counts needed without a token cap";
  EXPECT_EQ(cut_micro_batches(samples, {}, 4), (Groups{{7, 3, 9, 1}, {4, 2}})) << "the last the rest";
  EXPECT_EQ(cut_micro_batches(samples, tokens, 6, 10), (Groups{{7, 3}, {9}, {1}, {4, 2}}));
  EXPECT_EQ(cut_micro_batches(samples, tokens, 6, 11), (Groups{{7, 3, 9}, {1}, {4, 2}}));
  EXPECT_EQ(cut_micro_batches(samples, tokens, 2, 100), (Groups{{7, 3}, {9, 1}, {4, 2}})) << "the sample cap";
  EXPECT_EQ(cut_micro_batches(samples, tokens, 6, 1), (Groups{{7}, {3}, {9}, {1}, {4}, {2}}))
      << "each over the cap, alone";
  const std::vector<std::int64_t> too_few = {5, 4};
  EXPECT_THROW(cut_micro_batches(samples, too_few, 3, 10), Error);
  EXPECT_THROW(cut_micro_batches(samples, tokens, 0, 10), Error);
  EXPECT_THROW(cut_micro_batches(samples, tokens, 3, -1), Error);
  EXPECT_EQ(replica_share(7, 1, 3), (std::vector<std::int64_t>{1, 4}));
  EXPECT_EQ(replica_share(7, 0, 3), (std::vector<std::int64_t>{0, 3, 6}));
  EXPECT_TRUE(replica_share(1, 1, 2).empty());
}

// Interleaved stages need a step's micro-batches at least the stages, best in whole groups of them: the
// cut's count made so by splitting the fullest micro-batch of two samples or more where its halves weigh
// closest -- the samples, their order and both caps kept.
TEST(BatchPlan, MicroBatchesForInterleavedStagesSplitTheFullest) {
  using Groups = std::vector<std::vector<std::int64_t>>;
  const std::vector<std::int64_t> samples = {7, 3, 9, 1, 4, 2};
  const std::vector<std::int64_t> tokens = {5, 4, 2, 12, 3, 3};
  // By tokens, 11 at most: {7, 3, 9} (11), {1} (12), {4, 2} (6); in pairs the first is split 5 | 6.
  EXPECT_EQ(cut_micro_batches(samples, tokens, 6, 11, 2), (Groups{{7}, {3, 9}, {1}, {4, 2}}));
  EXPECT_EQ(cut_micro_batches(samples, tokens, 6, 11, 3), (Groups{{7, 3, 9}, {1}, {4, 2}})) << "already whole";
  // Without tokens the samples weigh alike: {7, 3, 9, 1} {4, 2} -> threes.
  EXPECT_EQ(cut_micro_batches(samples, {}, 4, 0, 3), (Groups{{7, 3}, {9, 1}, {4, 2}}));
  EXPECT_EQ(cut_micro_batches(samples, tokens, 6, 100, 6), (Groups{{7}, {3}, {9}, {1}, {4}, {2}}));
  // 6 samples make no whole groups of 4: at least 4, the first split where its halves weigh 5 | 6.
  EXPECT_EQ(cut_micro_batches(samples, tokens, 6, 11, 4), (Groups{{7}, {3, 9}, {1}, {4, 2}}));
  EXPECT_EQ(cut_micro_batches(samples, tokens, 2, 11, 4).size(), 4u) << "already 4 of 2 samples at most";
  EXPECT_THROW(cut_micro_batches(samples, tokens, 6, 11, 7), Error) << "6 samples cannot make 7 micro-batches";
  // Any lengths and caps: the samples in order, each micro-batch within both caps (or one sample),
  // as many micro-batches as the cut's rounded up to whole groups -- or, samples not in whole
  // groups, the cut's or the groups' if more.
  std::uint64_t state = 12345;
  const auto next = [&](std::uint64_t n) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<std::int64_t>((state >> 33) % n);
  };
  for (int round = 0; round < 500; ++round) {
    const std::int64_t groups = 1 + next(4), n = groups + next(5 * groups);
    std::vector<std::int64_t> ids, lengths;
    for (std::int64_t i = 0; i < n; ++i) ids.push_back(100 + i), lengths.push_back(1 + next(20));
    const std::int64_t items = 1 + next(5), cap = next(2) == 0 ? 0 : 5 + next(40);
    const Groups cut = cut_micro_batches(ids, lengths, items, cap);
    const Groups grouped = cut_micro_batches(ids, lengths, items, cap, groups);
    const auto g = static_cast<std::size_t>(groups);
    if (n % groups == 0) {
      EXPECT_EQ(grouped.size(), (cut.size() + g - 1) / g * g) << round;
    } else {
      EXPECT_EQ(grouped.size(), std::max(cut.size(), g)) << round;
    }
    std::vector<std::int64_t> flat;
    for (const auto& mb : grouped) {
      ASSERT_FALSE(mb.empty()) << round;
      ASSERT_LE(static_cast<std::int64_t>(mb.size()), items) << round;
      std::int64_t held = 0;
      for (std::int64_t id : mb) held += lengths[static_cast<std::size_t>(id - 100)];
      if (cap > 0 && mb.size() > 1) {
        ASSERT_LE(held, cap) << round;
      }
      flat.insert(flat.end(), mb.begin(), mb.end());
    }
    ASSERT_EQ(flat, ids) << round;
  }
}

}  // namespace
}  // namespace spin::data
