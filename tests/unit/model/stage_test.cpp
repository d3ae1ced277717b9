#include "model/stage.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace spin::model {
namespace {

TEST(Stages, EvenSplitGivesTheRemainderToTheFirstStages) {
  EXPECT_EQ(split_layers(10, 4), (std::vector<std::int64_t>{3, 3, 2, 2}));
  EXPECT_EQ(split_layers(8, 1), (std::vector<std::int64_t>{8}));
  const auto counts = split_layers(8, 2, {3, 5});
  const StageLayers last = stage_layers(counts, 1);
  EXPECT_EQ(last.begin, 3);
  EXPECT_EQ(last.end, 8);
  EXPECT_FALSE(last.first);
  EXPECT_TRUE(last.last);
  EXPECT_TRUE(stage_layers(counts, 0).first);
}

TEST(Stages, ImpossibleSplitsSayWhy) {
  const auto message = [](auto fn) {
    try {
      fn();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(message([] { split_layers(2, 4); }),
            "pipeline-parallel size 4 exceeds the model's 2 layers: every stage needs at least one layer");
  EXPECT_EQ(message([] { split_layers(8, 2, {3, 4}); }), "--pp-layers sums to 7 layers but the model has 8");
  EXPECT_EQ(message([] { split_layers(8, 2, {8}); }), "--pp-layers lists 1 stages but the pipeline-parallel size is 2");
  EXPECT_EQ(message([] { split_layers(8, 2, {0, 8}); }), "--pp-layers: every stage needs at least one layer, got 0");
}

}  // namespace
}  // namespace spin::model
