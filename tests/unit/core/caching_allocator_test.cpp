// The caching allocator's bookkeeping on a host backend that counts and can run out, and the
// launch-argument uploads kept in it (RecentUploads).
#include "core/caching_allocator.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <vector>

#include "common/test_util.h"
#include "core/error.h"
#include "core/recent_uploads.h"

namespace spin {
namespace {

struct CountingBackend final : CachingAllocator::Backend {
  std::size_t capacity = std::size_t{1} << 30, held = 0;
  std::set<void*> live;
  std::map<void*, std::size_t> sizes;
  void* allocate(std::size_t bytes) override {
    if (held + bytes > capacity) return nullptr;
    void* p = std::malloc(bytes);
    held += bytes;
    live.insert(p);
    sizes[p] = bytes;
    return p;
  }
  void release(void* p) override {
    EXPECT_EQ(live.erase(p), 1u) << "released twice or never allocated";
    held -= sizes[p];
    std::free(p);
  }
  std::string name() const override { return "test device"; }
};

TEST(CachingAllocator, RoundsSmallRequestsTo512BytesAndLargeOnesTo2MiB) {
  EXPECT_EQ(CachingAllocator::rounded(1), 512u);
  EXPECT_EQ(CachingAllocator::rounded(512), 512u);
  EXPECT_EQ(CachingAllocator::rounded(513), 1024u);
  EXPECT_EQ(CachingAllocator::rounded((1 << 20) - 1), std::size_t{1} << 20);
  EXPECT_EQ(CachingAllocator::rounded((1 << 20) + 1), std::size_t{2} << 20);
  EXPECT_EQ(CachingAllocator::rounded((5 << 20) + 7), std::size_t{6} << 20);
}

TEST(CachingAllocator, AStepLoopReusesBlocksWithoutNewBackendAllocations) {
  CountingBackend backend;
  CachingAllocator a(backend);
  const std::size_t sizes[] = {1000, 3 << 20, 700, 64 << 10};
  for (int step = 0; step < 10; ++step) {
    std::vector<PooledBuffer> buffers;
    for (std::size_t s : sizes) buffers.emplace_back(a, s);
    // Distinct, writable blocks.
    std::set<void*> distinct;
    for (auto& b : buffers) {
      distinct.insert(b.data());
      static_cast<char*>(b.data())[b.bytes() - 1] = 1;
    }
    EXPECT_EQ(distinct.size(), 4u);
  }
  EXPECT_EQ(a.stats().backend_allocations, 4);  // the first step only
  EXPECT_EQ(a.stats().reuses, 36);
  EXPECT_EQ(a.stats().in_use, 0u);
  EXPECT_EQ(a.stats().reserved, 1024u * 2 + (4u << 20) + (64u << 10));  // 1000, 700 -> 1024
  EXPECT_EQ(a.stats().peak_in_use, a.stats().reserved);
}

TEST(CachingAllocator, DoesNotHandOutBlocksMoreThanTwiceTheRequest) {
  CountingBackend backend;
  CachingAllocator a(backend);
  void* big = a.allocate(8 << 20);
  a.release(big);
  void* small = a.allocate(2 << 20);  // 8 MiB would waste 3/4: a new block
  EXPECT_NE(small, big);
  void* mid = a.allocate(5 << 20);    // 6 MiB rounded: the pooled 8 MiB block serves
  EXPECT_EQ(mid, big);
  EXPECT_EQ(a.stats().in_use, (2u << 20) + (8u << 20));
  a.release(small);
  a.release(mid);
}

TEST(CachingAllocator, OutOfMemoryEmptiesThePoolRetriesThenNamesTheRequest) {
  CountingBackend backend;
  backend.capacity = 10 << 20;
  CachingAllocator a(backend);
  a.release(a.allocate(6 << 20));  // pooled
  void* p = a.allocate(8 << 20);   // does not fit beside the pooled 6 MiB: pool emptied, retried
  EXPECT_NE(p, nullptr);
  EXPECT_EQ(a.stats().reserved, 8u << 20);
  const std::string e = testing::error_of([&] { a.allocate(4 << 20); });
  EXPECT_NE(e.find("test device: out of memory allocating 4 MiB (8 MiB in use, 8 MiB reserved)"), std::string::npos) << e;
  a.release(p);
  EXPECT_NE(testing::error_of([&] { a.release(&backend); }).find("did not hand out"), std::string::npos);
}

TEST(CachingAllocator, ReturnsEverythingToTheBackendAtTheEnd) {
  CountingBackend backend;
  {
    CachingAllocator a(backend);
    PooledBuffer kept(a, 100);
    a.release(a.allocate(3 << 20));
    PooledBuffer moved = std::move(kept);
    EXPECT_EQ(kept.data(), nullptr);
    a.empty_cache();
    EXPECT_EQ(backend.live.size(), 1u);
  }
  EXPECT_TRUE(backend.live.empty());
}

// Keyed by the bytes, not the host address: a host array changed in place goes up again, the
// same bytes from anywhere are one copy; the least recently used copy is the one replaced.
TEST(RecentUploads, ReusesACopyOfTheSameBytesAndReplacesTheLeastRecentlyUsed) {
  CountingBackend backend;
  CachingAllocator a(backend);
  {
    const auto host_copy = [](void* d, const void* h, std::size_t n) { std::memcpy(d, h, n); };
    RecentUploads recent(a, host_copy, 3);
    std::vector<std::int64_t> runs = {0, 1, 2, 3, 7, 9, 4};
    const void* first = recent.device_copy(runs.data(), runs.size() * sizeof(std::int64_t));
    EXPECT_EQ(std::memcmp(first, runs.data(), runs.size() * sizeof(std::int64_t)), 0);
    const std::vector<std::int64_t> same = runs;  // another address, the same bytes
    for (int layer = 0; layer < 5; ++layer) {
      EXPECT_EQ(recent.device_copy(same.data(), same.size() * sizeof(std::int64_t)), first);
    }
    EXPECT_EQ(recent.uploads(), 1);

    runs[4] = 8;  // the next step: in place, the same size
    const void* second = recent.device_copy(runs.data(), runs.size() * sizeof(std::int64_t));
    EXPECT_NE(second, first);
    EXPECT_EQ(static_cast<const std::int64_t*>(second)[4], 8);
    EXPECT_EQ(static_cast<const std::int64_t*>(first)[4], 7);  // still held
    EXPECT_EQ(recent.uploads(), 2);
    EXPECT_EQ(recent.device_copy(runs.data(), 3 * sizeof(std::int64_t)), recent.device_copy(same.data(), 24));
    EXPECT_EQ(recent.uploads(), 3);  // a prefix is an array of its own
    EXPECT_NE(recent.device_copy(nullptr, 0), nullptr);
    EXPECT_EQ(recent.uploads(), 4);  // the empty array replaced `first`, the least recently used

    EXPECT_EQ(recent.device_copy(runs.data(), runs.size() * sizeof(std::int64_t)), second);
    EXPECT_EQ(recent.uploads(), 4);
    const void* again = recent.device_copy(same.data(), same.size() * sizeof(std::int64_t));
    EXPECT_EQ(std::memcmp(again, same.data(), same.size() * sizeof(std::int64_t)), 0);
    EXPECT_EQ(recent.uploads(), 5);
    EXPECT_EQ(a.stats().in_use, 3 * CachingAllocator::rounded(56));  // three held, the evicted returned
  }
  EXPECT_EQ(a.stats().in_use, 0u);
}

}  // namespace
}  // namespace spin
