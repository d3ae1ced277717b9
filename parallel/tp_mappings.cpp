#include "parallel/tp_mappings.h"

#include <cstring>
#include <vector>

namespace spin::parallel {

namespace {
// Copies rank `rank`'s [rows, cols] block out of a [rows, cols * tp] matrix.
void take_block(const float* full, float* local, std::size_t rows, std::size_t cols, int tp,
                int rank) {
  const std::size_t ld = cols * static_cast<std::size_t>(tp);
  for (std::size_t r = 0; r < rows; ++r) {
    std::memcpy(local + r * cols, full + r * ld + static_cast<std::size_t>(rank) * cols,
                cols * sizeof(float));
  }
}

void all_gather_last_dim(Communicator& tp, const float* local, float* full, std::size_t rows,
                         std::size_t cols) {
  const auto ranks = static_cast<std::size_t>(tp.size());
  std::vector<float> blocks(ranks * rows * cols);  // [tp, rows, cols] as MPI delivers it
  tp.all_gather(local, blocks.data(), rows * cols);
  for (std::size_t r = 0; r < ranks; ++r) {
    for (std::size_t i = 0; i < rows; ++i) {
      std::memcpy(full + i * cols * ranks + r * cols, blocks.data() + (r * rows + i) * cols,
                  cols * sizeof(float));
    }
  }
}
}  // namespace

void copy_to_tp_region_backward(Communicator& tp, float* grad, std::size_t count) {
  tp.all_reduce(grad, count);
}

void reduce_from_tp_region_forward(Communicator& tp, float* x, std::size_t count) {
  tp.all_reduce(x, count);
}

void gather_from_tp_region_forward(Communicator& tp, const float* local, float* full,
                                   std::size_t rows, std::size_t cols) {
  all_gather_last_dim(tp, local, full, rows, cols);
}

void gather_from_tp_region_backward(Communicator& tp, const float* grad_full, float* grad_local,
                                    std::size_t rows, std::size_t cols) {
  take_block(grad_full, grad_local, rows, cols, tp.size(), tp.rank());
}

void scatter_to_tp_region_forward(Communicator& tp, const float* full, float* local,
                                  std::size_t rows, std::size_t cols) {
  take_block(full, local, rows, cols, tp.size(), tp.rank());
}

void scatter_to_tp_region_backward(Communicator& tp, const float* grad_local, float* grad_full,
                                   std::size_t rows, std::size_t cols) {
  all_gather_last_dim(tp, grad_local, grad_full, rows, cols);
}

void gather_from_sequence_parallel_forward(Communicator& tp, const float* local, float* full,
                                           std::size_t count) {
  tp.all_gather(local, full, count);
}

void gather_from_sequence_parallel_forward(Communicator& tp, const std::uint16_t* local,
                                           std::uint16_t* full, std::size_t count) {
  tp.all_gather_bf16(local, full, count);
}

void gather_from_sequence_parallel_backward(Communicator& tp, float* grad_full, float* grad_local,
                                            std::size_t count) {
  tp.reduce_scatter(grad_full, grad_local, count);
}

void reduce_scatter_to_sequence_parallel_forward(Communicator& tp, float* full, float* local,
                                                 std::size_t count) {
  tp.reduce_scatter(full, local, count);
}

void reduce_scatter_to_sequence_parallel_backward(Communicator& tp, const float* grad_local,
                                                  float* grad_full, std::size_t count) {
  tp.all_gather(grad_local, grad_full, count);
}

}  // namespace spin::parallel
