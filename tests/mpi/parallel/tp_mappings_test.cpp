// Run with 4 ranks.
#include "parallel/tp_mappings.h"

#include <gtest/gtest.h>

#include "mpi/mpi_test.h"

namespace spin::parallel {
namespace {

using spin::testing::mpi_world;

TEST(TpMappings, CopyToAndReduceFromHaveMegatronSemantics) {
  Communicator& tp = mpi_world();
  const float r = static_cast<float>(tp.rank());
  std::vector<float> x = {r, 2 * r};
  copy_to_tp_region_forward(tp, x.data(), 2);  // identity
  EXPECT_EQ(x, (std::vector<float>{r, 2 * r}));
  copy_to_tp_region_backward(tp, x.data(), 2);  // all-reduce
  EXPECT_EQ(x, (std::vector<float>{6, 12}));
  std::vector<float> y = {r};
  reduce_from_tp_region_forward(tp, y.data(), 1);  // all-reduce
  EXPECT_EQ(y[0], 6.0f);
  reduce_from_tp_region_backward(tp, y.data(), 1);  // identity
  EXPECT_EQ(y[0], 6.0f);
}

TEST(TpMappings, GatherAndScatterAlongTheLastDimensionAreInverse) {
  Communicator& tp = mpi_world();
  const int r = tp.rank();
  const std::size_t rows = 2, cols = 3;
  std::vector<float> local(rows * cols);
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < cols; ++j) local[i * cols + j] = static_cast<float>(100 * r + 10 * i + j);
  std::vector<float> full(rows * cols * 4);
  gather_from_tp_region_forward(tp, local.data(), full.data(), rows, cols);
  // full[i, r * cols + j] = 100 r + 10 i + j
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t c = 0; c < cols * 4; ++c)
      EXPECT_EQ(full[i * cols * 4 + c], static_cast<float>(100 * (c / cols) + 10 * i + c % cols));
  std::vector<float> back(rows * cols);
  gather_from_tp_region_backward(tp, full.data(), back.data(), rows, cols);
  EXPECT_EQ(back, local);
  scatter_to_tp_region_forward(tp, full.data(), back.data(), rows, cols);
  EXPECT_EQ(back, local);
  std::vector<float> again(full.size());
  scatter_to_tp_region_backward(tp, local.data(), again.data(), rows, cols);
  EXPECT_EQ(again, full);
}

}  // namespace
}  // namespace spin::parallel
