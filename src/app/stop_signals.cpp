#include "app/stop_signals.h"

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <optional>
#include <thread>

#include "core/error.h"

namespace spin::app {

namespace {

volatile std::sig_atomic_t received = 0;  // the first signal's number

extern "C" void on_stop_signal(int sig) {
  if (received == 0) received = sig;
}

struct TimeLimit {
  std::chrono::steady_clock::time_point deadline;
  std::string text;  // "checkpoint.exit_duration_mins = 230"
};
std::optional<TimeLimit> time_limit;

// What stop_agreed() agreed on: 0 nothing, 1 the time limit, 2 a signal (a signal wins).
int agreed = 0;

}  // namespace

void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // interrupted system calls (MPI's polling, file I/O) go on
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGUSR1, &action, nullptr);
}

bool stop_requested() { return received != 0; }

void set_time_limit(double minutes, const std::string& setting) {
  require(std::isfinite(minutes) && minutes >= 0.0, setting, " must be a number of minutes >= 0 (0: no limit), got ",
          minutes);
  time_limit.reset();
  // 10^8 minutes is 190 years: a limit beyond that never comes, and converting it to the clock's nanoseconds
  // overflowed (1e300 was a deadline in the past: a stop after the first step).
  if (minutes == 0.0 || minutes > 1e8) return;
  const auto span = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double, std::ratio<60>>(minutes));
  time_limit = TimeLimit{std::chrono::steady_clock::now() + span, cat(setting, " = ", minutes)};
}

bool stop_agreed(parallel::Communicator& world, bool made_progress) {
  std::int32_t mine = 0;
  if (made_progress && time_limit && std::chrono::steady_clock::now() >= time_limit->deadline) mine = 1;
  if (stop_requested()) mine = 2;
  std::int32_t any = mine;
  world.all_reduce(&any, 1, parallel::ReduceOp::Max);
  agreed = any;
  return any != 0;
}

std::string stop_reason() {
  if (agreed == 2) return stop_requested() ? stop_signal_name() : "a signal on another rank";
  if (agreed == 1 && time_limit) return cat("the time limit (", time_limit->text, " min)");
  return "";
}

void raise_test_stop(const parallel::Communicator& world, const char* event, std::int64_t n) {
  static const char* const fault = std::getenv("SPIN_FAULT");
  if (fault == nullptr || world.rank() != world.size() - 1) return;
  if (fault == cat(event, "@", n)) std::raise(SIGUSR1);
  while (fault == cat("hang-", event, "@", n)) std::this_thread::sleep_for(std::chrono::seconds(1));
}

const char* stop_signal_name() {
  switch (received) {
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
    default: return "";
  }
}

}  // namespace spin::app
