// Tensor-parallel regions with Megatron's meaning (megatron/core/tensor_parallel/mappings.py),
// written as explicit forward/backward pairs over flat float buffers:
//   copy_to      identity forward,   all-reduce backward   (input of a column-parallel layer)
//   reduce_from  all-reduce forward, identity backward     (output of a row-parallel layer)
//   gather_from  all-gather last dim forward, split backward
//   scatter_to   split last dim forward, all-gather backward
// and, for sequence parallelism (Megatron's --sequence-parallel: between the TP regions each
// rank holds a contiguous slice of the rows), over the rows:
//   gather_from_sequence_parallel   all-gather rows forward, reduce-scatter backward
//                                   (input of a column-parallel layer)
//   reduce_scatter_to_sequence_parallel
//                                   reduce-scatter rows forward, all-gather backward
//                                   (output of a row-parallel layer)
// All ranks of the TP group must call the same function with the same sizes.
#pragma once

#include <cstddef>
#include <cstdint>

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

// Sequence parallelism. `full` holds tp blocks of `count` values, rank r's rows in block r;
// `local` is this rank's block (it may be block rank() of `full` itself: in place).
// Forward: full = every rank's local block (float32 or the bf16 of a mixed-precision product's
// input).
void gather_from_sequence_parallel_forward(Communicator& tp, const float* local, float* full,
                                           std::size_t count);
void gather_from_sequence_parallel_forward(Communicator& tp, const std::uint16_t* local,
                                           std::uint16_t* full, std::size_t count);
// Backward: grad_local = the sum over ranks of their grad_full's block rank(). In place
// (grad_local == grad_full) the result is the first `count` values of grad_full.
void gather_from_sequence_parallel_backward(Communicator& tp, float* grad_full, float* grad_local,
                                            std::size_t count);
// Forward: local = the sum over ranks of their partial full's block rank() (in place as above).
void reduce_scatter_to_sequence_parallel_forward(Communicator& tp, float* full, float* local,
                                                 std::size_t count);
// Backward: grad_full = every rank's grad_local.
void reduce_scatter_to_sequence_parallel_backward(Communicator& tp, const float* grad_local,
                                                  float* grad_full, std::size_t count);

}  // namespace spin::parallel
