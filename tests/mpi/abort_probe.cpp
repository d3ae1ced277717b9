// A job in which one rank fails mid-run while the others wait in a collective: abort_job must
// print that rank's one error line and stop every rank with a non-zero status (no hang).
// Driven by tests/e2e/abort_test.py.
#include "parallel/job_errors.h"
#include "parallel/mpi_communicator.h"

int main(int argc, char** argv) {
  spin::parallel::MpiRuntime mpi(&argc, &argv);
  spin::parallel::Communicator& world = mpi.world();
  try {
    if (world.rank() == world.size() - 1) spin::fail("deliberate failure on the last rank");
    world.barrier();  // the other ranks wait here for a rank that will never come
  } catch (const std::exception& e) {
    spin::parallel::abort_job(e.what());
  }
  return 0;
}
