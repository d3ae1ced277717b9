// CUDA and cuBLAS failures as spin::Error naming the call, the file and the line:
//   SPIN_CUDA_CHECK(cudaMemcpy(...));   SPIN_CUBLAS_CHECK(cublasSgemm(...));
//   SPIN_CUDA_CHECK_LAUNCH("rmsnorm_forward");   // after a kernel launch
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "core/error.h"

namespace spin::cuda {

inline void check(cudaError_t status, const char* call, const char* file, int line) {
  if (status != cudaSuccess) {
    fail("CUDA: ", call, " failed: ", cudaGetErrorName(status), " (", cudaGetErrorString(status), ") at ", file,
         ":", line);
  }
}

inline void check(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    fail("cuBLAS: ", call, " failed: ", cublasGetStatusName(status), " (", cublasGetStatusString(status),
         ") at ", file, ":", line);
  }
}

}  // namespace spin::cuda

#define SPIN_CUDA_CHECK(call) ::spin::cuda::check((call), #call, __FILE__, __LINE__)
#define SPIN_CUBLAS_CHECK(call) ::spin::cuda::check((call), #call, __FILE__, __LINE__)
#define SPIN_CUDA_CHECK_LAUNCH(kernel) ::spin::cuda::check(cudaGetLastError(), kernel " launch", __FILE__, __LINE__)
