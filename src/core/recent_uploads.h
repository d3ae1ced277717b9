// RecentUploads: device copies of the last few host arrays a kernels object sent up as launch
// arguments, reused when the same bytes go up again. A decode step's cached attention hands every
// layer the same table of runs, a training step every layer's attention the same cu_seqlens, and
// the optimizer its same table of ranges every step: one upload where there was one a layer (each
// a host call and a copy on the stream the kernels wait behind).
// The copies are read-only. A pointer stays valid through the next `capacity - 1` distinct arrays
// (enough for the few one kernels call sends up); an evicted copy's block goes back to the
// stream-ordered pool (CachingAllocator), where only work queued after the kernels reading it can
// reuse it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "core/caching_allocator.h"

namespace spin {

class RecentUploads {
 public:
  // copy(device, host, bytes): the host-to-device copy, ordered on the kernels' stream.
  using Copy = std::function<void(void* device, const void* host, std::size_t bytes)>;
  RecentUploads(CachingAllocator& allocator, Copy copy, std::size_t capacity = 8);

  // A device copy of host[0, bytes): the one made earlier when one of the last `capacity` distinct
  // arrays held the same bytes, else a new one (replacing the least recently used).
  const void* device_copy(const void* host, std::size_t bytes);
  std::int64_t uploads() const { return uploads_; }  // copies made (misses)

 private:
  struct Entry {
    std::vector<unsigned char> bytes;
    PooledBuffer device;
    std::uint64_t last_use = 0;
  };
  CachingAllocator& allocator_;
  Copy copy_;
  std::size_t capacity_;
  std::vector<Entry> entries_;
  std::uint64_t clock_ = 0;
  std::int64_t uploads_ = 0;
};

}  // namespace spin
