// The end of a hang (Megatron-LM's --distributed-timeout-minutes, PyTorch's collective timeout): a blocking
// wait -- an MPI call, the wait for a GPU's queued work, which NCCL's collectives sit in -- that has not returned
// after the timeout prints one error line naming the wait and ends the process with status 1. mpirun then stops
// the other ranks; under srun each rank waiting on the lost one times out alike. Without it a rank that died or
// hangs (a node lost, a deadlock) holds the whole allocation until the scheduler's time limit.
//
// The waits are marked where they block (watchdog::Wait, a few nanoseconds: two atomic stores); a thread
// started once per process looks at them a few times a second. Only time inside a marked wait counts: a rank
// computing for an hour is never ended, a rank waiting an hour for another is.
// (C++17: the CUDA sources include it.)
#pragma once

#include <cstdint>

namespace spin::watchdog {

// Starts the watchdog (once; a later call changes the timeout): a marked wait older than `timeout_seconds`
// ends the process, its line naming `rank` and `setting` (the option that sets the timeout). 0 or less, or
// infinite: off.
void start(double timeout_seconds, int rank, const char* setting);

// Marks the calling thread as waiting, from construction to destruction; `what` (a string literal: "MPI_Allreduce")
// names the call, `group` the ranks it waits on (0: none, as for the GPU), `count` its elements (-1: none). The
// outermost of nested marks counts.
class Wait {
 public:
  explicit Wait(const char* what, int group = 0, std::int64_t count = -1);
  ~Wait();
  Wait(const Wait&) = delete;
  Wait& operator=(const Wait&) = delete;

 private:
  bool outermost_;
};

}  // namespace spin::watchdog
