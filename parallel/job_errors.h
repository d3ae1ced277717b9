// How an error stops a job: one clear line, a non-zero exit on every rank, never a hang.
//   - run_collectively: errors that can happen on any subset of ranks during set-up (bad input,
//     missing file, impossible layout) are agreed on by all ranks; each throws CollectiveError
//     with the message of the lowest failing rank, main() prints it once and every rank exits 1.
//   - abort_job: any other error (found mid-run by one rank) prints that rank's line and calls
//     MPI_Abort, which stops every rank.
#pragma once

#include <functional>
#include <string>

#include "core/error.h"
#include "parallel/communicator.h"

namespace spin::parallel {

class CollectiveError : public Error {
 public:
  CollectiveError(int origin_rank, const std::string& message)
      : Error(message), origin_rank_(origin_rank) {}
  int origin_rank() const { return origin_rank_; }

 private:
  int origin_rank_;
};

// Collective over `world`. `step` must not communicate over `world` itself: a rank that fails
// early would leave the others waiting in that communication.
void run_collectively(Communicator& world, const std::function<void()>& step);

// "spin: error: rank R: <message>" on stderr, flushed.
void print_error(int rank, const std::string& message);

// Prints the error once (later calls on the same process print nothing) and stops every rank
// of the job with a non-zero status. Without MPI it exits the process with status 1.
[[noreturn]] void abort_job(const std::string& message);

}  // namespace spin::parallel
