#include "checkpoint/shard_rectangles.h"

#include <gtest/gtest.h>

#include <set>

namespace spin::ckpt {
namespace {

// Every element of [begin, end) lands exactly once, at its global position, and padding rows
// are left out -- for row-split (with padding), column-split and replicated shards.
TEST(ShardRectangles, CoverEveryValidElementOfAnyRangeExactlyOnce) {
  const ShardedTensor rows{"r", Tensor::zeros({5, 4}), {9, 4}, 0, 6, 3};      // rows 6..8 + 2 padding
  const ShardedTensor cols{"c", Tensor::zeros({3, 4}), {3, 12}, 1, 4, 4};     // columns 4..7
  const ShardedTensor whole{"w", Tensor::zeros({3, 4}), {3, 4}, -1, 0, 0};
  for (const ShardedTensor* t : {&rows, &cols, &whole}) {
    const std::int64_t n = t->local.numel();
    const std::int64_t cols_local = t->local.shape()[1];
    const std::int64_t valid = t->split_dim == 0 ? t->length * cols_local : n;
    for (std::int64_t begin = 0; begin < n; ++begin) {
      for (std::int64_t end = begin + 1; end <= n; ++end) {
        std::set<std::int64_t> seen;
        for (const ShardRectangle& r : shard_rectangles(*t, begin, end)) {
          for (std::int64_t i = 0; i < r.count[0]; ++i) {
            for (std::int64_t j = 0; j < r.count[1]; ++j) {
              const std::int64_t local = r.local_offset + i * cols_local + j;
              const std::int64_t lr = local / cols_local, lc = local % cols_local;
              const std::int64_t gr = t->split_dim == 0 ? lr + t->offset : lr;
              const std::int64_t gc = t->split_dim == 1 ? lc + t->offset : lc;
              ASSERT_EQ(r.start[0] + i, gr) << t->name;
              ASSERT_EQ(r.start[1] + j, gc) << t->name;
              ASSERT_TRUE(seen.insert(local).second) << "element twice";
            }
          }
        }
        std::int64_t want = 0;
        for (std::int64_t i = begin; i < end; ++i) want += i < valid ? 1 : 0;
        ASSERT_EQ(static_cast<std::int64_t>(seen.size()), want) << t->name << " " << begin << ".." << end;
      }
    }
  }
}

TEST(ShardRectangles, OneDimensionalAndWholeShards) {
  const ShardedTensor norm{"n", Tensor::zeros({6}), {6}, -1, 0, 0};
  const auto r = shard_rectangles(norm, 2, 5);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].start, (Shape{2}));
  EXPECT_EQ(r[0].count, (Shape{3}));
  // A split bias (Qwen2's q/k/v at TP > 1): elements [6, 10) of a global [16], 3 of them valid
  // in a (hypothetically padded) shard of 4.
  const ShardedTensor bias{"b", Tensor::zeros({4}), {16}, 0, 6, 3};
  const auto b = shard_rectangles(bias, 1, 4);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].start, (Shape{7}));
  EXPECT_EQ(b[0].count, (Shape{2}));
  EXPECT_EQ(b[0].local_offset, 1);
  EXPECT_TRUE(shard_rectangles(bias, 3, 4).empty()) << "padding only";
  const ShardedTensor rows{"r", Tensor::zeros({5, 4}), {9, 4}, 0, 6, 3};
  const ShardRectangle all = shard_rectangle(rows);
  EXPECT_EQ(all.start, (Shape{6, 0}));
  EXPECT_EQ(all.count, (Shape{3, 4}));
}

}  // namespace
}  // namespace spin::ckpt
