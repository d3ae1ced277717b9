// Graceful stop. SIGTERM (Slurm at the time limit, scancel) and SIGUSR1 (sbatch
// --signal=USR1@120, or `kill -USR1` to mpirun, which forwards it) only set a flag; spin train
// asks every rank for it at each step boundary (spin sft likewise, spin generate --save-every at
// each round's), one tiny all-reduce, and when any rank has it, all save what they have and exit
// with kExitRequeue, which jobs/slurm/ scripts read as "requeue me": the next run resumes.
// A time limit (Megatron's --exit-duration-in-mins, NeMo's max_time) stops the same way, for
// schedulers that send no signal ahead of the end.
#pragma once

#include <cstdint>
#include <string>

#include "parallel/communicator.h"

namespace spin::app {

inline constexpr int kExitRequeue = 75;  // EX_TEMPFAIL (sysexits.h): try again later

// Installs the SIGTERM and SIGUSR1 handlers (idempotent).
void install_stop_handlers();

// Whether this process has received one of them.
bool stop_requested();

// The name of the first signal received ("SIGTERM", "SIGUSR1"), or "" when none.
const char* stop_signal_name();

// Stop once `minutes` have passed since this call (0: no limit), as for a signal; `setting`
// names the option in the stop message. Throws spin::Error for a negative or non-finite value.
void set_time_limit(double minutes, const std::string& setting);

// Whether any rank of `world` has received a signal, or -- when `made_progress`: the command
// has done some work in this process, so that a job requeued at its limit always moves on --
// has reached the time limit (collective: the same answer on every rank).
bool stop_agreed(parallel::Communicator& world, bool made_progress = true);

// Why the last stop_agreed() answered true: "SIGUSR1", "a signal on another rank",
// "the time limit (checkpoint.exit_duration_mins = 230)", ...
std::string stop_reason();

// Test hook: with SPIN_FAULT=<event>@<n> (e.g. signal-after-step@4), raises SIGUSR1 in the last
// rank of `world` when called with that event and n; with SPIN_FAULT=hang-<event>@<n> that rank hangs
// there instead (sleeps for ever, waiting on nothing: parallel.distributed_timeout_minutes' test).
void raise_test_stop(const parallel::Communicator& world, const char* event, std::int64_t n);

}  // namespace spin::app
