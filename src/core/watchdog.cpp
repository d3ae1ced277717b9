#include "core/watchdog.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace spin::watchdog {

namespace {

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A thread's wait in progress: since 0 when none. Written by its thread, read by the watchdog's.
struct Slot {
  std::atomic<std::int64_t> since{0};
  std::atomic<const char*> what{nullptr};
  std::atomic<int> group{0};
  std::atomic<std::int64_t> count{-1};
};

struct Registry {
  std::mutex mutex;
  std::vector<Slot*> slots;
  std::atomic<std::int64_t> timeout_ns{0};
  int rank = 0;
  std::string setting;
  std::once_flag started;
};

Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: the watchdog's thread may outlive main's statics
  return *r;
}

// This thread's slot, in the registry while the thread lives.
struct ThreadSlot {
  Slot slot;
  int depth = 0;
  ThreadSlot() {
    std::lock_guard<std::mutex> lock(registry().mutex);
    registry().slots.push_back(&slot);
  }
  ~ThreadSlot() {
    std::lock_guard<std::mutex> lock(registry().mutex);
    auto& slots = registry().slots;
    slots.erase(std::remove(slots.begin(), slots.end(), &slot), slots.end());
  }
};

ThreadSlot& this_thread_slot() {
  thread_local ThreadSlot s;
  return s;
}

[[noreturn]] void end_process(const Slot& slot, double waited_s) {
  Registry& r = registry();
  const char* what = slot.what.load();
  const int group = slot.group.load();
  const std::int64_t count = slot.count.load();
  std::string detail;
  if (count >= 0) detail += " of " + std::to_string(count) + (count == 1 ? " element" : " elements");
  if (group > 0) detail += " over a group of " + std::to_string(group) + " ranks";
  std::fprintf(stderr,
               "spin: error: rank %d: %s%s has not returned after %.0f s: a rank it waits on stopped or hangs (a lost "
               "node, a deadlock, an error of its own) -- ending this rank (%s; 0 turns this off)\n",
               r.rank, what != nullptr ? what : "a wait", detail.c_str(), waited_s, r.setting.c_str());
  std::fflush(stderr);
  std::_Exit(1);
}

void watch() {
  Registry& r = registry();
  for (;;) {
    const std::int64_t timeout = r.timeout_ns.load();
    // A few looks per timeout, at most one a second (the timeout's error is then late by under a quarter of it).
    const auto pause =
        std::chrono::nanoseconds(timeout > 0 ? std::min<std::int64_t>(timeout / 4, 1'000'000'000) : 1'000'000'000);
    std::this_thread::sleep_for(pause);
    if (timeout <= 0) continue;
    const std::int64_t now = now_ns();
    std::lock_guard<std::mutex> lock(r.mutex);
    for (const Slot* slot : r.slots) {
      const std::int64_t since = slot->since.load();
      if (since != 0 && now - since > timeout) end_process(*slot, static_cast<double>(now - since) * 1e-9);
    }
  }
}

}  // namespace

void start(double timeout_seconds, int rank, const char* setting) {
  Registry& r = registry();
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    r.rank = rank;
    r.setting = setting;
  }
  // Over 30 years (or infinite) is no timeout at all, and would overflow the nanoseconds.
  const bool on = timeout_seconds > 0 && timeout_seconds < 1e9;
  r.timeout_ns.store(on ? static_cast<std::int64_t>(timeout_seconds * 1e9) : 0);
  if (on) std::call_once(r.started, [] { std::thread(watch).detach(); });
}

Wait::Wait(const char* what, int group, std::int64_t count) {
  ThreadSlot& t = this_thread_slot();
  outermost_ = t.depth++ == 0;
  if (!outermost_) return;
  t.slot.what.store(what);
  t.slot.group.store(group);
  t.slot.count.store(count);
  t.slot.since.store(now_ns());
}

Wait::~Wait() {
  ThreadSlot& t = this_thread_slot();
  --t.depth;
  if (outermost_) t.slot.since.store(0);
}

}  // namespace spin::watchdog
