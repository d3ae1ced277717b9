// For MPI test binaries (linked with mpi_test_main.cpp): the world communicator of the run.
#pragma once

#include "parallel/communicator.h"

namespace spin::testing {

parallel::Communicator& mpi_world();

}  // namespace spin::testing
