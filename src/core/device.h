// Where a tensor's elements live, and how that memory is allocated, cleared and copied. The host
// is built in; the CUDA backend (kernels/cuda/device_memory.h) registers the GPU's operations
// when a process selects `--device cuda`, so core/ and everything above it carry no CUDA code
// and never branch on the device: they ask the device's MemoryOps.
//
// Ordering: a device's operations are queued on the stream its kernels use, so a copy or a
// clear issued after a kernel sees that kernel's results. Copies that involve host memory
// return only when the host side may be read or reused; copies within a device and clears may
// still be in flight when they return.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace spin {

enum class Device { Cpu, Cuda };

std::string_view device_name(Device d);  // "cpu", "cuda"

// Parses "cpu" or "cuda"; spin::Error naming the text otherwise.
Device parse_device(std::string_view name);

// What a device's allocator holds, in bytes.
struct MemoryUsage {
  std::size_t in_use = 0;       // handed out now
  std::size_t reserved = 0;     // held from the device (in use + pooled for reuse)
  std::size_t peak_in_use = 0;  // most ever handed out at once
};

class MemoryOps {
 public:
  virtual ~MemoryOps() = default;
  // The allocator's figures, where the device has an allocator of its own (the GPU's caching
  // allocator); none for the host.
  virtual std::optional<MemoryUsage> usage() const { return std::nullopt; }
  // `bytes` of zeros (never nullptr; spin::Error when out of memory). release(nullptr) is a no-op.
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void release(void* p) = 0;
  virtual void fill_zero(void* p, std::size_t bytes) = 0;
  // Within this device.
  virtual void copy(void* dst, const void* src, std::size_t bytes) = 0;
  // Between this device and host memory. copy_to_host returns when the data is there;
  // copy_from_host once the host buffer may be reused (the device copy is ordered before any
  // later work on the device, which need not have run yet).
  virtual void copy_to_host(void* host_dst, const void* src, std::size_t bytes) = 0;
  virtual void copy_from_host(void* dst, const void* host_src, std::size_t bytes) = 0;
};

// The operations of `d`; spin::Error when `d` is not available in this process (a build
// without CUDA, or CUDA not initialised).
MemoryOps& memory_ops(Device d);
// Installs the operations of a device (the CUDA backend does this once); nullptr removes them.
void register_memory_ops(Device d, MemoryOps* ops);

// Copies `bytes` from `src` on `from` to `dst` on `to` (host <-> device or within one device).
void copy_bytes(void* dst, Device to, const void* src, Device from, std::size_t bytes);

}  // namespace spin
