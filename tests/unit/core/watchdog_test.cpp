// core/watchdog.h in a process of its own each (death tests: the watchdog ends the process it runs in).
#include "core/watchdog.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <thread>

namespace spin::watchdog {
namespace {

void sleep_s(double seconds) { std::this_thread::sleep_for(std::chrono::duration<double>(seconds)); }

// A wait past the timeout ends the process with status 1 and one line naming the rank, the call, its elements,
// its group and the setting.
TEST(WatchdogDeathTest, AWaitPastTheTimeoutEndsTheProcessNamingIt) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        start(1.0, 3, "--distributed-timeout-minutes = 0.0167");
        const Wait waiting("MPI_Allreduce", 4, 1024);
        sleep_s(30);
        std::exit(0);
      },
      ::testing::ExitedWithCode(1),
      "^spin: error: rank 3: MPI_Allreduce of 1024 elements over a group of 4 ranks has not returned after 1 s: a "
      "rank it waits on stopped or hangs .* \\(--distributed-timeout-minutes = 0.0167; 0 turns this off\\)\n$");
}

// Only time inside a wait counts: waits shorter than the timeout, one after another, and computing longer than it
// between them end nothing; a nested wait's end leaves its outer one counting, and the outer one is named.
TEST(WatchdogDeathTest, OnlyTheTimeInsideOneWaitCounts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        start(1.0, 0, "x");  // 10 times the waits below: a loaded machine's scheduling cannot reach it
        for (int i = 0; i < 8; ++i) {
          const Wait waiting("short");
          sleep_s(0.1);
        }
        sleep_s(2.5);  // computing
        std::exit(7);
      },
      ::testing::ExitedWithCode(7), "");
  EXPECT_EXIT(
      {
        start(1.0, 0, "x");
        const Wait outer("MPI_Waitall (an exchange between stages)", 2);
        { const Wait inner("MPI_Barrier", 2); }
        sleep_s(30);
        std::exit(0);
      },
      ::testing::ExitedWithCode(1), "rank 0: MPI_Waitall \\(an exchange between stages\\) over a group of 2 ranks");
  // 0 turns it off.
  EXPECT_EXIT(
      {
        start(0.0, 0, "x");
        const Wait waiting("MPI_Recv", 2, 1);
        sleep_s(1.0);
        std::exit(7);
      },
      ::testing::ExitedWithCode(7), "");
}

}  // namespace
}  // namespace spin::watchdog
