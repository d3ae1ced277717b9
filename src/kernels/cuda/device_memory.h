// Device memory for the CUDA path: the caching allocator (core/caching_allocator.h) over
// cudaMalloc/cudaFree of the current device, the process's compute stream, the MemoryOps that
// make Device::Cuda tensors (core/device.h) live there, and helpers to move host data in and out.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "core/caching_allocator.h"
#include "core/device.h"

namespace spin::cuda {

class CudaBackend final : public CachingAllocator::Backend {
 public:
  void* allocate(std::size_t bytes) override;  // nullptr on cudaErrorMemoryAllocation
  void release(void* p) override;
  std::string name() const override;
};

// The process's allocator for the current device (one rank, one GPU).
CachingAllocator& device_allocator();

// The stream every kernel, copy and collective of this process is queued on (one rank, one GPU,
// one stream: program order is execution order). Created on first use, non-blocking.
cudaStream_t compute_stream();

// Device::Cuda tensors: memory from device_allocator(), cleared and copied on compute_stream().
class CudaMemory final : public MemoryOps {
 public:
  void* allocate(std::size_t bytes) override;
  void release(void* p) override;
  void fill_zero(void* p, std::size_t bytes) override;
  void copy(void* dst, const void* src, std::size_t bytes) override;
  void copy_to_host(void* host_dst, const void* src, std::size_t bytes) override;
  void copy_from_host(void* dst, const void* host_src, std::size_t bytes) override;
  std::optional<MemoryUsage> usage() const override;
};

// Selects GPU `ordinal` for this process and registers CudaMemory for Device::Cuda (idempotent;
// CudaKernels calls it with the current device). spin::Error when there is no such GPU.
void init_device(int ordinal);
// The current device's ordinal after init_device, registering its memory if not yet done.
void use_current_device();

// Synchronous copies (test and set-up code; the step loop keeps data on the device).
void copy_to_device(void* dst, const void* src, std::size_t bytes);
void copy_to_host(void* dst, const void* src, std::size_t bytes);
void fill_bytes(void* dst, int value, std::size_t bytes);

template <class T>
PooledBuffer upload(const std::vector<T>& host) {
  PooledBuffer b(device_allocator(), host.size() * sizeof(T));
  copy_to_device(b.data(), host.data(), host.size() * sizeof(T));
  return b;
}
template <class T>
std::vector<T> download(const PooledBuffer& b, std::size_t count) {
  std::vector<T> host(count);
  copy_to_host(host.data(), b.data(), count * sizeof(T));
  return host;
}

}  // namespace spin::cuda
