// A CUDA kernel's source launched under the emulation (tests/common/cuda_emulation.h) with
// CudaKernels' block size: `blocks` blocks of kThreads threads, or the 2-D `grid` where given.
// Include it after cuda_emulation.h and the kernels' header.
#pragma once

#include <functional>

namespace spin::kernels::emulated {

inline void run(unsigned blocks, const std::function<void()>& kernel, dim3 grid = dim3(0)) {
  cuda_emulation::launch(grid.x == 0 ? dim3(blocks) : grid, dim3(cuda_detail::kThreads), 0, kernel);
}

}  // namespace spin::kernels::emulated
