// gtest main for tests run under mpirun: initialises MPI, lets rank 0 print the usual report
// while other ranks print only their failures (prefixed with the rank), and exits non-zero on
// every rank if any rank failed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include "mpi/mpi_test.h"
#include "parallel/mpi_communicator.h"

namespace {

spin::parallel::Communicator* g_world = nullptr;

class FailuresOnly : public ::testing::EmptyTestEventListener {
 public:
  explicit FailuresOnly(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (!r.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: failure\n%s\n", rank_, r.file_name() ? r.file_name() : "?",
                 r.line_number(), r.summary());
    std::fflush(stderr);
  }

 private:
  int rank_;
};

}  // namespace

namespace spin::testing {
parallel::Communicator& mpi_world() { return *g_world; }

std::string shared_temp_dir(const std::string& prefix) {
  std::int64_t pid = ::getpid();
  g_world->broadcast(&pid, 1, 0);
  return (std::filesystem::temp_directory_path() / (prefix + "_" + std::to_string(pid))).string();
}
}  // namespace spin::testing

int main(int argc, char** argv) {
  spin::parallel::MpiRuntime mpi(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  g_world = &mpi.world();
  const int rank = g_world->rank();
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailuresOnly(rank));
  }
  std::int32_t failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  const std::int32_t mine = failed;
  g_world->all_reduce(&failed, 1, spin::parallel::ReduceOp::Max);
  if (rank == 0 && failed && !mine) std::fprintf(stderr, "spin: a test failed on another rank\n");
  return failed;
}
