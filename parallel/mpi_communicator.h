// The MPI implementation of Communicator (host buffers), and the RAII owner of MPI itself.
// Each MpiCommunicator owns its MPI_Comm (freed in the destructor; the world is never freed).
// Counts above INT_MAX elements are split into chunks, so 2^31+ element buffers work.
#pragma once

#include <memory>

#include "parallel/communicator.h"

namespace spin::parallel {

// Initialises MPI (MPI_THREAD_FUNNELED) on construction and finalises it on destruction.
// Exactly one lives in main(). world() is valid while it lives.
class MpiRuntime {
 public:
  MpiRuntime(int* argc, char*** argv);
  ~MpiRuntime();
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;

  Communicator& world() { return *world_; }

 private:
  std::unique_ptr<Communicator> world_;
};

// True between MPI_Init and MPI_Finalize.
bool mpi_active();
// The MPI_COMM_WORLD rank, or 0 when MPI is not active.
int world_rank();

}  // namespace spin::parallel
