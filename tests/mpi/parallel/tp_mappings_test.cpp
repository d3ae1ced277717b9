// Run with 4 ranks.
#include "parallel/tp_mappings.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>

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

// Sequence parallelism: gather_from's forward puts every rank's rows in rank order (float32 and
// bf16, in place too); each mapping's backward is the adjoint of its forward over the group:
// sum over ranks of <forward(x_r), y_r> = sum over ranks of <x_r, backward(y_r)>.
TEST(TpMappings, SequenceParallelGatherAndReduceScatterAreEachOthersAdjoints) {
  Communicator& tp = mpi_world();
  const int r = tp.rank(), n = tp.size();
  const std::size_t count = 3;  // this rank's rows x hidden
  std::vector<float> local(count), full(count * static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < count; ++i) local[i] = static_cast<float>(10 * r + static_cast<int>(i));
  gather_from_sequence_parallel_forward(tp, local.data(), full.data(), count);
  for (std::size_t i = 0; i < full.size(); ++i) EXPECT_EQ(full[i], static_cast<float>(10 * (i / count) + i % count));
  std::vector<float> in_place(full.size(), -1.0f);
  std::copy(local.begin(), local.end(), in_place.begin() + static_cast<std::ptrdiff_t>(r * count));
  gather_from_sequence_parallel_forward(tp, in_place.data() + r * count, in_place.data(), count);
  EXPECT_EQ(in_place, full);
  std::vector<std::uint16_t> local16(count), full16(full.size());
  for (std::size_t i = 0; i < count; ++i) local16[i] = static_cast<std::uint16_t>(0x3f80 + 10 * r + static_cast<int>(i));
  gather_from_sequence_parallel_forward(tp, local16.data(), full16.data(), count);
  for (std::size_t i = 0; i < full16.size(); ++i) EXPECT_EQ(full16[i], 0x3f80 + 10 * (i / count) + i % count);

  // Adjoints, on per-rank values (small integers: every sum exact).
  const auto dot = [&](const std::vector<float>& a, const std::vector<float>& b) {
    float d = std::inner_product(a.begin(), a.end(), b.begin(), 0.0f);
    tp.all_reduce(&d, 1);
    return d;
  };
  std::vector<float> y_full(full.size()), y_local(count);
  for (std::size_t i = 0; i < y_full.size(); ++i) y_full[i] = static_cast<float>((3 * i + static_cast<std::size_t>(r)) % 7);
  for (std::size_t i = 0; i < count; ++i) y_local[i] = static_cast<float>((5 * i + static_cast<std::size_t>(r)) % 4);
  // gather_from: x local -> full; its backward takes a full gradient to a local one.
  std::vector<float> grad_local(count), scratch = y_full;
  gather_from_sequence_parallel_backward(tp, scratch.data(), grad_local.data(), count);
  EXPECT_EQ(dot(full, y_full), dot(local, grad_local));
  scratch = y_full;  // in place: the result in the first `count` values
  gather_from_sequence_parallel_backward(tp, scratch.data(), scratch.data(), count);
  EXPECT_TRUE(std::equal(grad_local.begin(), grad_local.end(), scratch.begin()));
  // reduce_scatter_to: x full (a rank's partial sums) -> local; its backward: local -> full.
  std::vector<float> partial = y_full, reduced(count), grad_full(full.size());
  reduce_scatter_to_sequence_parallel_forward(tp, partial.data(), reduced.data(), count);
  reduce_scatter_to_sequence_parallel_backward(tp, y_local.data(), grad_full.data(), count);
  EXPECT_EQ(dot(reduced, y_local), dot(y_full, grad_full));
}

}  // namespace
}  // namespace spin::parallel
