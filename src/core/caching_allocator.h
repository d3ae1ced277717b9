// CachingAllocator: device memory without a cudaMalloc in the step loop (PyTorch's caching
// allocator, reduced to what spin needs). Requests are rounded up (to 512 bytes below 1 MiB, to
// 2 MiB above), freed blocks go to a pool and are handed out again to any request whose rounded
// size they cover without wasting more than half; only a miss calls the backend. When the
// backend runs out, the pool is returned to it and the request retried once; if it still fails,
// spin::Error names the request and what is reserved and in use.
// The raw allocation is a Backend, so the bookkeeping is tested on the host (std::malloc) and
// the CUDA path plugs in cudaMalloc/cudaFree (kernels/cuda/device_memory.h). Single stream:
// a block freed while a kernel still uses it is only reused by work queued after that kernel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>

namespace spin {

class CachingAllocator {
 public:
  struct Backend {
    virtual ~Backend() = default;
    virtual void* allocate(std::size_t bytes) = 0;  // nullptr when out of memory
    virtual void release(void* p) = 0;
    virtual std::string name() const = 0;           // for errors: "CUDA device 0"
  };
  struct Stats {
    std::size_t in_use = 0;        // bytes handed out (rounded)
    std::size_t reserved = 0;      // bytes held from the backend (in use + pooled)
    std::size_t peak_in_use = 0;
    std::int64_t backend_allocations = 0;  // misses
    std::int64_t reuses = 0;               // hits
  };

  explicit CachingAllocator(Backend& backend) : backend_(backend) {}
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  static std::size_t rounded(std::size_t bytes);
  void* allocate(std::size_t bytes);
  void release(void* p);  // p from allocate(); nullptr is ignored
  void empty_cache();     // returns every pooled block to the backend
  const Stats& stats() const { return stats_; }

 private:
  Backend& backend_;
  std::multimap<std::size_t, void*> pool_;             // free blocks by size
  std::unordered_map<void*, std::size_t> live_;        // handed-out blocks and their sizes
  Stats stats_;
};

// An allocation returned to its allocator when it goes out of scope (move-only).
class PooledBuffer {
 public:
  PooledBuffer() = default;
  PooledBuffer(CachingAllocator& allocator, std::size_t bytes)
      : allocator_(&allocator), data_(allocator.allocate(bytes)), bytes_(bytes) {}
  ~PooledBuffer() { reset(); }
  PooledBuffer(PooledBuffer&& o) noexcept : allocator_(o.allocator_), data_(o.data_), bytes_(o.bytes_) {
    o.data_ = nullptr;
  }
  PooledBuffer& operator=(PooledBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      allocator_ = o.allocator_, data_ = o.data_, bytes_ = o.bytes_;
      o.data_ = nullptr;
    }
    return *this;
  }
  PooledBuffer(const PooledBuffer&) = delete;
  PooledBuffer& operator=(const PooledBuffer&) = delete;

  void* data() const { return data_; }
  template <class T>
  T* as() const { return static_cast<T*>(data_); }
  std::size_t bytes() const { return bytes_; }
  void reset() {
    if (data_ != nullptr) allocator_->release(data_);
    data_ = nullptr;
  }

 private:
  CachingAllocator* allocator_ = nullptr;
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

}  // namespace spin
