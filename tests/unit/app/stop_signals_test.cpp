#include "app/stop_signals.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/error.h"
#include "parallel/communicator.h"

namespace spin::app {
namespace {

// A time limit stops as a signal would, but only once the command has made progress in this
// process; the reason names the setting. (No signal is raised here: it would stay set for the
// rest of the test process.)
TEST(StopSignals, ATimeLimitStopsOnlyAfterProgress) {
  parallel::SelfCommunicator world;
  set_time_limit(0.0, "checkpoint.exit_duration_mins");
  EXPECT_FALSE(stop_agreed(world)) << "no limit";
  EXPECT_EQ(stop_reason(), "");
  set_time_limit(60.0, "checkpoint.exit_duration_mins");
  EXPECT_FALSE(stop_agreed(world)) << "an hour is not over";
  set_time_limit(1e-9, "checkpoint.exit_duration_mins");
  EXPECT_FALSE(stop_agreed(world, false)) << "no step done in this process yet";
  EXPECT_TRUE(stop_agreed(world, true));
  EXPECT_EQ(stop_reason(), "the time limit (checkpoint.exit_duration_mins = 1e-09 min)");
  set_time_limit(0.0, "checkpoint.exit_duration_mins");
  EXPECT_FALSE(stop_agreed(world));
  // Beyond the clock's nanoseconds (2^63: 292 years) a limit never comes -- its conversion overflowed into a deadline
  // in the past, a stop after the first step.
  for (double minutes : {1e12, 1e300}) {
    set_time_limit(minutes, "checkpoint.exit_duration_mins");
    EXPECT_FALSE(stop_agreed(world, true)) << minutes;
  }
  set_time_limit(0.0, "checkpoint.exit_duration_mins");
  EXPECT_THROW(set_time_limit(-1.0, "x"), Error);
  EXPECT_THROW(set_time_limit(std::numeric_limits<double>::quiet_NaN(), "x"), Error);
  EXPECT_THROW(set_time_limit(std::numeric_limits<double>::infinity(), "x"), Error);
}

}  // namespace
}  // namespace spin::app
