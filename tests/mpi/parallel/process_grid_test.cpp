// Run with 8 ranks.
#include "parallel/process_grid.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "mpi/mpi_test.h"

namespace spin::parallel {
namespace {

using spin::testing::mpi_world;

std::vector<std::int32_t> members(Communicator& group) {
  std::vector<std::int32_t> out(static_cast<std::size_t>(group.size()));
  const std::int32_t me = mpi_world().rank();
  group.all_gather(&me, out.data(), 1);
  return out;
}

TEST(ProcessGrid, RankOrderIsTpThenDpThenPpAndGroupsMatch) {
  const std::vector<Layout> layouts = {{2, 2, 2}, {8, 1, 1}, {1, 8, 1}, {1, 1, 8},
                                       {2, 1, 0}, {4, 2, 1}, {1, 2, 0}};
  for (const Layout& asked : layouts) {
    ProcessGrid g(mpi_world(), asked);
    const int tp = g.tp_size(), pp = g.pp_size(), dp = g.dp_size();
    ASSERT_EQ(tp * pp * dp, 8);
    const int r = g.world_rank();
    EXPECT_EQ(r, g.pp_rank() * dp * tp + g.dp_rank() * tp + g.tp_rank());
    const auto world_rank = [&](int t, int d, int p) { return p * dp * tp + d * tp + t; };
    std::vector<std::int32_t> want;
    for (int t = 0; t < tp; ++t) want.push_back(world_rank(t, g.dp_rank(), g.pp_rank()));
    EXPECT_EQ(members(g.tp()), want) << "tp group";
    want.clear();
    for (int d = 0; d < dp; ++d) want.push_back(world_rank(g.tp_rank(), d, g.pp_rank()));
    EXPECT_EQ(members(g.dp()), want) << "dp group";
    want.clear();
    for (int p = 0; p < pp; ++p) want.push_back(world_rank(g.tp_rank(), g.dp_rank(), p));
    EXPECT_EQ(members(g.pp()), want) << "pp group";
    want.clear();
    for (int p = 0; p < pp; ++p)
      for (int t = 0; t < tp; ++t) want.push_back(world_rank(t, g.dp_rank(), p));
    EXPECT_EQ(members(g.mp()), want) << "model-parallel group";
    want.clear();
    if (pp > 1 && (g.is_first_stage() || g.is_last_stage())) {
      want = {world_rank(g.tp_rank(), g.dp_rank(), 0), world_rank(g.tp_rank(), g.dp_rank(), pp - 1)};
    } else {
      want = {r};
    }
    EXPECT_EQ(members(g.embedding()), want) << "embedding group";
    EXPECT_EQ(g.is_first_stage(), g.pp_rank() == 0);
    EXPECT_EQ(g.is_last_stage(), g.pp_rank() == pp - 1);
    EXPECT_EQ(g.prev_stage(), g.pp_rank() == 0 ? -1 : g.pp_rank() - 1);
    EXPECT_EQ(g.next_stage(), g.pp_rank() == pp - 1 ? -1 : g.pp_rank() + 1);
  }
}

TEST(ProcessGrid, ImpossibleLayoutsSayWhatDoesNotDivide) {
  const auto message = [](Layout l) {
    try {
      ProcessGrid g(mpi_world(), l);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(message({3, 1, 0}), "world size 8 is not divisible by tp (3) x pp (1) = 3");
  EXPECT_EQ(message({2, 2, 3}), "tp (2) x pp (2) x dp (3) = 12 does not match the world size 8");
  EXPECT_EQ(message({0, 1, 0}), "invalid parallel layout: tp 0, pp 1, dp 0 (each must be at least 1)");
}

}  // namespace
}  // namespace spin::parallel
