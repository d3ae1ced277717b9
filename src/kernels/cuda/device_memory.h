// Device memory for the CUDA path: the caching allocator (core/caching_allocator.h) over
// cudaMalloc/cudaFree of the current device, and helpers to move host data in and out.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "core/caching_allocator.h"

namespace spin::cuda {

class CudaBackend final : public CachingAllocator::Backend {
 public:
  void* allocate(std::size_t bytes) override;  // nullptr on cudaErrorMemoryAllocation
  void release(void* p) override;
  std::string name() const override;
};

// The process's allocator for the current device (one rank, one GPU).
CachingAllocator& device_allocator();

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
