#include <gtest/gtest.h>

#include "common/test_util.h"
#include "kernels/cpu/cpu_kernels.h"

namespace spin::kernels {
namespace {

// A shard holding vocabulary rows [4, 7) of a hidden-3 table.
TEST(Embedding, ForwardLooksUpHeldRowsAndZeroesOthers) {
  const CpuKernels k;
  const int hidden = 3, start = 4, rows = 3;
  const auto table = testing::random_vector(rows * hidden, 1);
  const std::vector<std::int32_t> ids = {4, 0, 6, 7, 5, 4};
  std::vector<float> out(ids.size() * hidden, 9.0f);
  k.embedding_forward(out.data(), ids.data(), table.data(), 6, hidden, start, rows, 1.0f);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const bool held = ids[i] >= start && ids[i] < start + rows;
    for (int j = 0; j < hidden; ++j) {
      const float want = held ? table[static_cast<std::size_t>((ids[i] - start) * hidden + j)] : 0.0f;
      EXPECT_EQ(out[i * hidden + j], want) << "row " << i;
    }
  }
}

TEST(Embedding, BackwardScatterAddsRepeatedIds) {
  const CpuKernels k;
  const int hidden = 2, start = 4, rows = 3;
  const std::vector<std::int32_t> ids = {4, 0, 6, 4, 7};
  const std::vector<float> dout = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  std::vector<float> dtable(rows * hidden, 0.5f);  // accumulated into
  k.embedding_backward(dtable.data(), ids.data(), dout.data(), 5, hidden, start, rows, 1.0f);
  const std::vector<float> want = {0.5f + 1 + 7, 0.5f + 2 + 8, 0.5f, 0.5f, 0.5f + 5, 0.5f + 6};
  EXPECT_EQ(dtable, want);
}

TEST(Embedding, BackwardMatchesFiniteDifferences) {
  const CpuKernels k;
  const int hidden = 4, start = 2, rows = 5, n = 7;
  auto table = testing::random_vector(rows * hidden, 3);
  const std::vector<std::int32_t> ids = {2, 3, 9, 2, 6, 0, 4};
  const auto r = testing::random_vector(n * hidden, 4);
  std::vector<float> out(n * hidden), grad(rows * hidden, 0.0f);
  k.embedding_backward(grad.data(), ids.data(), r.data(), n, hidden, start, rows, 1.0f);
  const auto loss = [&] {
    k.embedding_forward(out.data(), ids.data(), table.data(), n, hidden, start, rows, 1.0f);
    return testing::weighted_sum(out, r);
  };
  testing::check_gradient(table, grad, loss, 1e-2, 1e-3, 1e-4, "dtable vs finite differences");
}

// Gemma's scaled embedding: out = scale * row (float32's product), and the gradient carries the
// scale (finite differences), ids outside the shard still zero.
TEST(Embedding, ScaledLookupAndItsGradient) {
  const CpuKernels k;
  const int hidden = 4, start = 2, rows = 5, n = 7;
  const float scale = 45.254834f;
  auto table = testing::random_vector(rows * hidden, 5);
  const std::vector<std::int32_t> ids = {2, 3, 9, 2, 6, 0, 4};
  std::vector<float> out(n * hidden, 9.0f);
  k.embedding_forward(out.data(), ids.data(), table.data(), n, hidden, start, rows, scale);
  for (int i = 0; i < n; ++i) {
    const bool held = ids[i] >= start && ids[i] < start + rows;
    for (int j = 0; j < hidden; ++j) {
      const float want = held ? table[static_cast<std::size_t>((ids[i] - start) * hidden + j)] * scale : 0.0f;
      EXPECT_EQ(out[i * hidden + j], want) << "row " << i;
    }
  }
  const auto r = testing::random_vector(n * hidden, 6);
  std::vector<float> grad(rows * hidden, 0.0f);
  k.embedding_backward(grad.data(), ids.data(), r.data(), n, hidden, start, rows, scale);
  const auto loss = [&] {
    k.embedding_forward(out.data(), ids.data(), table.data(), n, hidden, start, rows, scale);
    return testing::weighted_sum(out, r);
  };
  testing::check_gradient(table, grad, loss, 1e-3, 1e-3, 1e-3, "dtable vs finite differences");
}

}  // namespace
}  // namespace spin::kernels
