#include <cstdio>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device_memory.h"

namespace spin::cuda {

void* CudaBackend::allocate(std::size_t bytes) {
  void* p = nullptr;
  const cudaError_t status = cudaMalloc(&p, bytes);
  if (status == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();  // clear the sticky-free error state
    return nullptr;
  }
  check(status, "cudaMalloc", __FILE__, __LINE__);
  return p;
}

void CudaBackend::release(void* p) {
  // Called from destructors (also at process exit, when the runtime may be unloading): reports
  // instead of throwing.
  const cudaError_t status = cudaFree(p);
  if (status != cudaSuccess && status != cudaErrorCudartUnloading) {
    std::fprintf(stderr, "spin: warning: cudaFree failed: %s\n", cudaGetErrorString(status));
  }
}

std::string CudaBackend::name() const {
  int device = 0;
  SPIN_CUDA_CHECK(cudaGetDevice(&device));
  return cat("CUDA device ", device);
}

CachingAllocator& device_allocator() {
  static CudaBackend backend;
  static CachingAllocator allocator(backend);
  return allocator;
}

void copy_to_device(void* dst, const void* src, std::size_t bytes) {
  SPIN_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}
void copy_to_host(void* dst, const void* src, std::size_t bytes) {
  SPIN_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}
void fill_bytes(void* dst, int value, std::size_t bytes) { SPIN_CUDA_CHECK(cudaMemset(dst, value, bytes)); }

}  // namespace spin::cuda
