// Graceful stop. SIGTERM (Slurm at the time limit, scancel) and SIGUSR1 (sbatch
// --signal=USR1@120, or `kill -USR1` to mpirun, which forwards it) only set a flag; spin train
// asks every rank for it at each step boundary (spin generate --save-every at each round's),
// one tiny all-reduce, and when any rank has it, all save what they have and exit with
// kExitRequeue, which jobs/slurm/ scripts read as "requeue me": the next run resumes.
#pragma once

#include <cstdint>

#include "parallel/communicator.h"

namespace spin::app {

inline constexpr int kExitRequeue = 75;  // EX_TEMPFAIL (sysexits.h): try again later

// Installs the SIGTERM and SIGUSR1 handlers (idempotent).
void install_stop_handlers();

// Whether this process has received one of them.
bool stop_requested();

// The name of the first signal received ("SIGTERM", "SIGUSR1"), or "" when none.
const char* stop_signal_name();

// Whether any rank of `world` has received one (collective: the same answer on every rank).
bool stop_agreed(parallel::Communicator& world);

// Test hook: with SPIN_FAULT=<event>@<n> (e.g. signal-after-step@4), raises SIGUSR1 in the last
// rank of `world` when called with that event and n.
void raise_test_stop(const parallel::Communicator& world, const char* event, std::int64_t n);

}  // namespace spin::app
