#include "app/stop_signals.h"

#include <csignal>
#include <cstdlib>

#include "core/error.h"

namespace spin::app {

namespace {

volatile std::sig_atomic_t received = 0;  // the first signal's number

extern "C" void on_stop_signal(int sig) {
  if (received == 0) received = sig;
}

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

bool stop_agreed(parallel::Communicator& world) {
  std::int32_t any = stop_requested() ? 1 : 0;
  world.all_reduce(&any, 1, parallel::ReduceOp::Max);
  return any != 0;
}

void raise_test_stop(const parallel::Communicator& world, const char* event, std::int64_t n) {
  static const char* const fault = std::getenv("SPIN_FAULT");
  if (fault != nullptr && world.rank() == world.size() - 1 && fault == cat(event, "@", n)) std::raise(SIGUSR1);
}

const char* stop_signal_name() {
  switch (received) {
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
    default: return "";
  }
}

}  // namespace spin::app
