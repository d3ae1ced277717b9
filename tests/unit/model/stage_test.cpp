#include "model/stage.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

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

// The least largest stage, then the most even: against every split of up to 9 layers into up to 4
// stages, over random layer and head costs; equal layers without a head give the even split.
TEST(Stages, BalancedSplitsPaceThePipelineAsLittleAsAnySplit) {
  EXPECT_EQ(balanced_split(std::vector<double>(10, 1.0), 0.0, 4), split_layers(10, 4));
  EXPECT_EQ(balanced_split(std::vector<double>(8, 1.0), 0.0, 2), split_layers(8, 2));
  EXPECT_EQ(balanced_split(std::vector<double>(8, 1.0), 2.0, 2), (std::vector<std::int64_t>{5, 3}));
  EXPECT_EQ(balanced_split(std::vector<double>(8, 1.0), 6.4, 2), (std::vector<std::int64_t>{7, 1}));
  EXPECT_THROW(balanced_split(std::vector<double>(3, 1.0), 0.0, 4), Error);
  std::uint64_t state = 7;
  const auto next = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<double>((state >> 33) % 1000) / 100.0 + 0.5;
  };
  for (int round = 0; round < 300; ++round) {
    const int layers = 1 + round % 9, stages = 1 + (round / 9) % std::min(4, layers);
    std::vector<double> costs;
    for (int l = 0; l < layers; ++l) costs.push_back(next());
    const double head = round % 3 == 0 ? 0.0 : next() * 2;
    // Every split: stage boundaries as a bit mask over the layers' gaps.
    double best_pace = 1e300, best_squares = 1e300;
    for (unsigned mask = 0; mask < (1u << (layers - 1)); ++mask) {
      if (__builtin_popcount(mask) != stages - 1) continue;
      double pace = 0, squares = 0, run = 0;
      int stage = 0;
      for (int l = 0; l < layers; ++l) {
        run += costs[static_cast<std::size_t>(l)];
        if (l == layers - 1 || (mask >> l & 1u)) {
          if (++stage == stages) run += head;
          pace = std::max(pace, run), squares += run * run, run = 0;
        }
      }
      if (pace < best_pace * (1 - 1e-9) || (pace <= best_pace * (1 + 1e-9) && squares < best_squares)) {
        best_pace = pace, best_squares = squares;
      }
    }
    const std::vector<std::int64_t> counts = balanced_split(costs, head, stages);
    ASSERT_EQ(counts.size(), static_cast<std::size_t>(stages)) << round;
    double pace = 0, squares = 0;
    std::size_t at = 0;
    for (std::size_t s = 0; s < counts.size(); ++s) {
      ASSERT_GE(counts[s], 1) << round;
      double run = s + 1 == counts.size() ? head : 0.0;
      for (std::int64_t i = 0; i < counts[s]; ++i) run += costs[at++];
      pace = std::max(pace, run), squares += run * run;
    }
    ASSERT_EQ(at, costs.size()) << round;
    EXPECT_NEAR(pace, best_pace, 1e-9 * best_pace) << round;
    EXPECT_NEAR(squares, best_squares, 1e-9 * best_squares) << round;
  }
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
