#include "model/tp_dims.h"

#include <gtest/gtest.h>

#include "common/tiny_model.h"
#include "core/error.h"

namespace spin::model {
namespace {

TEST(TpDims, SplitsHeadsMlpAndPadsTheVocabulary) {
  testing::TinyShape s;  // vocab 37, heads 4, kv 2, intermediate 24
  const ModelConfig c = testing::tiny_config(s);
  std::int64_t covered = 0;
  for (int r = 0; r < 2; ++r) {
    const TpDims d = tp_dims(c, r, 2);
    EXPECT_EQ(d.heads, 2);
    EXPECT_EQ(d.kv_heads, 1);
    EXPECT_EQ(d.intermediate, 12);
    EXPECT_EQ(d.vocab_rows, 19);
    EXPECT_EQ(d.vocab_start, covered);
    covered += d.vocab_valid;
  }
  EXPECT_EQ(covered, 37);  // every id held exactly once; the last shard has one padding row
}

TEST(TpDims, RefusesWhatDoesNotDivideAndSaysWhat) {
  testing::TinyShape s;
  const ModelConfig c = testing::tiny_config(s);
  try {
    tp_dims(c, 0, 4);  // 2 kv heads over 4 ranks
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "num_key_value_heads (2) is not divisible by tensor-parallel size 4");
  }
  EXPECT_THROW(tp_dims(c, 0, 3), Error);  // heads 4 over 3
}

TEST(TpDims, AShardMayHoldNoVocabulary) {
  testing::TinyShape s;
  s.vocab = 5;
  s.heads = s.kv_heads = 4;
  s.intermediate = 8;
  const ModelConfig c = testing::tiny_config(s);
  const TpDims last = tp_dims(c, 3, 4);  // rows of 2: [6, 8) lies past the vocabulary
  EXPECT_EQ(last.vocab_valid, 0);
  EXPECT_EQ(last.vocab_start, 5);
}

}  // namespace
}  // namespace spin::model
