#include "core/threads.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

namespace spin {

int usable_cpus(int at_most) {
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  const int allowed = ::sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
  return std::clamp(allowed, 1, std::max(at_most, 1));
}

void for_each_index(std::size_t n, int workers, const std::function<void(std::size_t)>& fn) {
  if (workers <= 1 || n < 2) {
    for (std::size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<std::size_t> next{0};
  std::vector<std::jthread> pool;
  for (int t = 0; t < workers && static_cast<std::size_t>(t) < n; ++t) {
    pool.emplace_back([&] {
      for (std::size_t i = next++; i < n; i = next++) fn(i);
    });
  }
}

}  // namespace spin
