#include "core/caching_allocator.h"

#include <algorithm>

#include "core/error.h"

namespace spin {

namespace {
constexpr std::size_t kSmall = std::size_t{1} << 20;  // below: 512-byte granules
constexpr std::size_t kSmallGranule = 512;
constexpr std::size_t kLargeGranule = std::size_t{2} << 20;

std::string mib(std::size_t bytes) { return cat(static_cast<double>(bytes) / (1 << 20), " MiB"); }
}  // namespace

CachingAllocator::~CachingAllocator() {
  empty_cache();
  // Blocks still live at exit (a leak in the caller) are returned too.
  for (const auto& [p, bytes] : live_) backend_.release(p);
}

std::size_t CachingAllocator::rounded(std::size_t bytes) {
  const std::size_t granule = bytes < kSmall ? kSmallGranule : kLargeGranule;
  return std::max<std::size_t>(granule, (bytes + granule - 1) / granule * granule);
}

void* CachingAllocator::allocate(std::size_t bytes) {
  const std::size_t size = rounded(bytes);
  // The smallest pooled block that fits and wastes at most half of itself.
  const auto it = pool_.lower_bound(size);
  void* p = nullptr;
  std::size_t got = size;
  if (it != pool_.end() && it->first <= 2 * size) {
    got = it->first;
    p = it->second;
    pool_.erase(it);
    ++stats_.reuses;
  } else {
    p = backend_.allocate(size);
    if (p == nullptr && !pool_.empty()) {
      empty_cache();
      p = backend_.allocate(size);
    }
    require(p != nullptr, backend_.name(), ": out of memory allocating ", mib(size), " (", mib(stats_.in_use),
            " in use, ", mib(stats_.reserved), " reserved)");
    stats_.reserved += size;
    ++stats_.backend_allocations;
  }
  live_.emplace(p, got);
  stats_.in_use += got;
  stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
  return p;
}

void CachingAllocator::release(void* p) {
  if (p == nullptr) return;
  const auto it = live_.find(p);
  require(it != live_.end(), backend_.name(), ": release of a pointer this allocator did not hand out");
  stats_.in_use -= it->second;
  pool_.emplace(it->second, p);
  live_.erase(it);
}

void CachingAllocator::empty_cache() {
  for (const auto& [size, p] : pool_) {
    backend_.release(p);
    stats_.reserved -= size;
  }
  pool_.clear();
}

}  // namespace spin
