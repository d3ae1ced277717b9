// Run with 4 ranks.
#include "parallel/job_errors.h"

#include <gtest/gtest.h>

#include "mpi/mpi_test.h"

namespace spin::parallel {
namespace {

using spin::testing::mpi_world;

TEST(RunCollectively, EveryRankGetsTheLowestFailingRanksMessage) {
  Communicator& w = mpi_world();
  try {
    run_collectively(w, [&] {
      if (w.rank() >= 2) fail("bad input on rank ", w.rank());
    });
    FAIL() << "expected CollectiveError";
  } catch (const CollectiveError& e) {
    EXPECT_EQ(e.origin_rank(), 2);
    EXPECT_STREQ(e.what(), "bad input on rank 2");
  }
}

TEST(RunCollectively, ReturnsNormallyWhenNoRankFails) {
  int ran = 0;
  EXPECT_NO_THROW(run_collectively(mpi_world(), [&] { ++ran; }));
  EXPECT_EQ(ran, 1);
}

}  // namespace
}  // namespace spin::parallel
