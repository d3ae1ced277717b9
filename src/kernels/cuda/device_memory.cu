#include <cuda_profiler_api.h>
#include <nvtx3/nvToolsExt.h>

#include <cstdio>

#include "core/profile.h"
#include "core/watchdog.h"
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

cudaStream_t compute_stream() {
  static cudaStream_t stream = [] {
    cudaStream_t s = nullptr;
    SPIN_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    return s;
  }();
  return stream;
}

void* CudaMemory::allocate(std::size_t bytes) {
  void* p = device_allocator().allocate(bytes == 0 ? 1 : bytes);
  SPIN_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, compute_stream()));
  return p;
}

// Stream-ordered reuse: work queued later on the one stream runs after the last use of p.
void CudaMemory::release(void* p) { device_allocator().release(p); }

void CudaMemory::fill_zero(void* p, std::size_t bytes) {
  SPIN_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, compute_stream()));
}

void CudaMemory::copy(void* dst, const void* src, std::size_t bytes) {
  SPIN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, compute_stream()));
}

void CudaMemory::copy_to_host(void* host_dst, const void* src, std::size_t bytes) {
  SPIN_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, compute_stream()));
  const watchdog::Wait waiting(
      "cudaStreamSynchronize (a copy to the host behind the GPU's queued kernels and NCCL "
      "collectives)");
  SPIN_CUDA_CHECK(cudaStreamSynchronize(compute_stream()));
}

namespace {
// Page-locked (pinned or registered) host memory: an asynchronous copy from it may still be
// reading it after the call returns.
bool page_locked(const void* host) {
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, host) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return attributes.type == cudaMemoryTypeHost;
}
}  // namespace

void CudaMemory::copy_from_host(void* dst, const void* host_src, std::size_t bytes) {
  // The host buffer may be reused or freed as soon as this returns. From pageable memory (all
  // of spin's host buffers) cudaMemcpyAsync returns once the data is staged, so the stream goes
  // on without a host sync (the decode loop's small uploads used to stall it ~10 times a
  // step); from page-locked memory the copy is truly asynchronous and is waited for.
  SPIN_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, compute_stream()));
  if (page_locked(host_src)) {
    const watchdog::Wait waiting("cudaStreamSynchronize (a copy from page-locked memory behind the GPU's queued work)");
    SPIN_CUDA_CHECK(cudaStreamSynchronize(compute_stream()));
  }
}

std::optional<MemoryUsage> CudaMemory::usage() const {
  const CachingAllocator::Stats s = device_allocator().stats();
  return MemoryUsage{s.in_use, s.reserved, s.peak_in_use};
}

namespace {
// Profiling (core/profile.h) on the GPU: every range is an NVTX range, and the window is
// cudaProfilerStart/Stop, so `nsys profile --capture-range=cudaProfilerApi` records just it.
class CudaProfileHooks final : public profile::DeviceHooks {
 public:
  void push(const char* name) override { nvtxRangePushA(name); }
  void pop() override { nvtxRangePop(); }
  // A profiler that cannot start or stop must not stop the training: said once, then ignored
  // (the profiler API's errors are not sticky).
  void start() override { tolerate(cudaProfilerStart(), "cudaProfilerStart"); }
  void stop() override {
    SPIN_CUDA_CHECK(cudaStreamSynchronize(compute_stream()));  // the window's work inside it
    tolerate(cudaProfilerStop(), "cudaProfilerStop");
  }

 private:
  void tolerate(cudaError_t status, const char* call) {
    if (status == cudaSuccess) return;
    (void)cudaGetLastError();
    if (!warned_) std::fprintf(stderr, "spin: warning: %s: %s (profiling goes on without it)\n", call, cudaGetErrorString(status));
    warned_ = true;
  }
  bool warned_ = false;
};
}  // namespace

void use_current_device() {
  static CudaMemory memory;
  register_memory_ops(Device::Cuda, &memory);
  static CudaProfileHooks hooks;
  profile::register_device_hooks(&hooks);
}

void init_device(int ordinal) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  require(status == cudaSuccess && count > 0, "--device cuda: no CUDA device is visible (",
          cudaGetErrorString(status), ")");
  require(ordinal >= 0 && ordinal < count, "--device cuda: this rank wants GPU ", ordinal,
          " but only ", count, " are visible (one rank per GPU: ranks per node <= GPUs per node)");
  SPIN_CUDA_CHECK(cudaSetDevice(ordinal));
  use_current_device();
}

void copy_to_device(void* dst, const void* src, std::size_t bytes) {
  SPIN_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}
void copy_to_host(void* dst, const void* src, std::size_t bytes) {
  SPIN_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}
void fill_bytes(void* dst, int value, std::size_t bytes) { SPIN_CUDA_CHECK(cudaMemset(dst, value, bytes)); }

}  // namespace spin::cuda
