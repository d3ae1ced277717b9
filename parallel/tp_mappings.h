// Tensor-parallel regions with Megatron's meaning (megatron/core/tensor_parallel/mappings.py),
// written as explicit forward/backward pairs over flat float buffers:
//   copy_to      identity forward,   all-reduce backward   (input of a column-parallel layer)
//   reduce_from  all-reduce forward, identity backward     (output of a row-parallel layer)
//   gather_from  all-gather last dim forward, split backward
//   scatter_to   split last dim forward, all-gather backward
// All ranks of the TP group must call the same function with the same sizes.
#pragma once

#include <cstddef>

#include "parallel/communicator.h"

namespace spin::parallel {

inline void copy_to_tp_region_forward(Communicator&, const void*, std::size_t) {}
void copy_to_tp_region_backward(Communicator& tp, float* grad, std::size_t count);

void reduce_from_tp_region_forward(Communicator& tp, float* x, std::size_t count);
inline void reduce_from_tp_region_backward(Communicator&, float*, std::size_t) {}

// local: [rows, cols] on each rank -> full: [rows, cols * tp], rank r's block at columns
// [r * cols, (r + 1) * cols).
void gather_from_tp_region_forward(Communicator& tp, const float* local, float* full,
                                   std::size_t rows, std::size_t cols);
void gather_from_tp_region_backward(Communicator& tp, const float* grad_full, float* grad_local,
                                    std::size_t rows, std::size_t cols);

// full: [rows, cols * tp] -> local: this rank's [rows, cols] block.
void scatter_to_tp_region_forward(Communicator& tp, const float* full, float* local,
                                  std::size_t rows, std::size_t cols);
void scatter_to_tp_region_backward(Communicator& tp, const float* grad_local, float* grad_full,
                                   std::size_t rows, std::size_t cols);

}  // namespace spin::parallel
