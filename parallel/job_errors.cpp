#include "parallel/job_errors.h"

#include <mpi.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "parallel/mpi_communicator.h"

namespace spin::parallel {

void run_collectively(Communicator& world, const std::function<void()>& step) {
  std::string message;
  bool failed = false;
  try {
    step();
  } catch (const std::exception& e) {
    message = e.what();
    failed = true;
  }
  std::int32_t first = failed ? world.rank() : world.size();
  world.all_reduce(&first, 1, ReduceOp::Min);
  if (first == world.size()) return;
  std::int64_t length = static_cast<std::int64_t>(message.size());
  world.broadcast(&length, 1, first);
  message.resize(static_cast<std::size_t>(length));
  world.broadcast(reinterpret_cast<std::uint8_t*>(message.data()), message.size(), first);
  throw CollectiveError(first, message);
}

void print_error(int rank, const std::string& message) {
  std::fprintf(stderr, "spin: error: rank %d: %s\n", rank, message.c_str());
  std::fflush(stderr);
}

void abort_job(const std::string& message) {
  static std::atomic<bool> printed{false};
  if (!printed.exchange(true)) print_error(world_rank(), message);
  if (mpi_active()) MPI_Abort(MPI_COMM_WORLD, 1);
  std::exit(1);
}

}  // namespace spin::parallel
