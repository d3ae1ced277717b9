#include "core/device.h"

#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace spin {

namespace {

constexpr std::size_t kAlignment = 64;  // a cache line; also enough for AVX-512 loads

class HostMemory final : public MemoryOps {
 public:
  void* allocate(std::size_t bytes) override {
    const std::size_t rounded = bytes == 0 ? kAlignment : (bytes + kAlignment - 1) / kAlignment * kAlignment;
    void* p = std::aligned_alloc(kAlignment, rounded);
    require(p != nullptr, "out of host memory allocating ", bytes, " bytes");
    std::memset(p, 0, rounded);
    return p;
  }
  void release(void* p) override { std::free(p); }
  void fill_zero(void* p, std::size_t bytes) override { std::memset(p, 0, bytes); }
  void copy(void* dst, const void* src, std::size_t bytes) override {
    if (bytes) std::memmove(dst, src, bytes);
  }
  void copy_to_host(void* dst, const void* src, std::size_t bytes) override { copy(dst, src, bytes); }
  void copy_from_host(void* dst, const void* src, std::size_t bytes) override { copy(dst, src, bytes); }
};

HostMemory host_memory;
MemoryOps* cuda_memory = nullptr;

}  // namespace

std::string_view device_name(Device d) { return d == Device::Cpu ? "cpu" : "cuda"; }

Device parse_device(std::string_view name) {
  if (name == "cpu") return Device::Cpu;
  if (name == "cuda") return Device::Cuda;
  fail("unknown device '", name, "' (expected cpu or cuda)");
}

MemoryOps& memory_ops(Device d) {
  if (d == Device::Cpu) return host_memory;
  require(cuda_memory != nullptr,
          "CUDA memory requested, but CUDA is not initialised in this process (a build without "
          "SPIN_CUDA, or no --device cuda)");
  return *cuda_memory;
}

void register_memory_ops(Device d, MemoryOps* ops) {
  require(d == Device::Cuda, "the host's memory operations are built in");
  cuda_memory = ops;
}

void copy_bytes(void* dst, Device to, const void* src, Device from, std::size_t bytes) {
  if (bytes == 0) return;
  if (from == to) {
    memory_ops(to).copy(dst, src, bytes);
  } else if (from == Device::Cpu) {
    memory_ops(to).copy_from_host(dst, src, bytes);
  } else {
    require(to == Device::Cpu, "copies between two different devices are not supported");
    memory_ops(from).copy_to_host(dst, src, bytes);
  }
}

}  // namespace spin
