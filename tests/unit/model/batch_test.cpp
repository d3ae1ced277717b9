#include "model/batch.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace spin::model {
namespace {

TEST(TokenBatch, PacksSequencesWithTargetsAndMask) {
  const TokenBatch b = TokenBatch::pack({{{5, 6, 7}, 2}, {{8, 9}, 1}});
  EXPECT_EQ(b.tokens, (std::vector<std::int32_t>{5, 6, 7, 8, 9}));
  EXPECT_EQ(b.cu_seqlens, (std::vector<std::int64_t>{0, 3, 5}));
  EXPECT_EQ(b.positions, (std::vector<std::int32_t>{0, 1, 2, 0, 1}));
  EXPECT_EQ(b.targets, (std::vector<std::int32_t>{6, 7, -1, 9, -1}));
  // Row 0 predicts position 1 (< mask_from 2): not counted; row 1 predicts position 2: counted.
  EXPECT_EQ(b.loss_mask, (std::vector<float>{0, 1, 0, 1, 0}));
  EXPECT_EQ(b.sequence_of, (std::vector<std::int32_t>{0, 0, 0, 1, 1}));
}

TEST(TokenBatch, RefusesEmptySequencesAndBadMasks) {
  EXPECT_THROW(TokenBatch::pack({{{}, 1}}), Error);
  EXPECT_THROW(TokenBatch::pack({{{1, 2}, 0}}), Error);
  EXPECT_THROW(TokenBatch::pack({{{1, 2}, 3}}), Error);
}

}  // namespace
}  // namespace spin::model
