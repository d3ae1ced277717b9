// For MPI test binaries (linked with mpi_test_main.cpp): the world communicator of the run.
#pragma once

#include <string>

#include "parallel/communicator.h"

namespace spin::testing {

parallel::Communicator& mpi_world();

// A directory path every rank of the world agrees on: <prefix>_<rank 0's pid> under the system's temporary
// directory (not created).
std::string shared_temp_dir(const std::string& prefix);

}  // namespace spin::testing
