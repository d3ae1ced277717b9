#include "core/profile.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <vector>

#include "core/error.h"

namespace spin::profile {

namespace {

struct Event {
  const char* name;
  const char* arg_name;
  std::int64_t value;
  int thread;
  double begin_us, end_us;  // end_us < begin_us while open
};

// The window's state. `on` is read without the lock by every Range; the rest under it.
std::atomic<bool> on{false};
std::mutex lock;
std::vector<Event> events;
std::int64_t window = 0;  // counts windows, so that a Range opened in one ignores the next
int process_id = 0;
DeviceHooks* device = nullptr;

double now_us() {
  // The wall clock, so that the ranks' files line up (as well as their clocks agree).
  return std::chrono::duration<double, std::micro>(std::chrono::system_clock::now().time_since_epoch()).count();
}

int thread_number() {
  static std::atomic<int> next{0};
  thread_local const int mine = next++;
  return mine;
}

void write_json_string(std::FILE* f, const char* s) {
  std::fputc('"', f);
  for (; *s != '\0'; ++s) {
    if (*s == '"' || *s == '\\') std::fputc('\\', f);
    std::fputc(*s, f);
  }
  std::fputc('"', f);
}

}  // namespace

void register_device_hooks(DeviceHooks* hooks) {
  const std::lock_guard<std::mutex> guard(lock);
  device = hooks;
}

void start(int process) {
  const std::lock_guard<std::mutex> guard(lock);
  if (on) return;
  events.clear();
  ++window;
  process_id = process;
  if (device != nullptr) device->start();
  on = true;
}

bool active() { return on; }

void stop(const std::string& path) {
  std::vector<Event> recorded;
  int process = 0;
  {
    const std::lock_guard<std::mutex> guard(lock);
    if (!on) return;
    on = false;
    if (device != nullptr) device->stop();
    recorded.swap(events);
    process = process_id;
  }
  std::FILE* f = std::fopen(path.c_str(), "w");
  require(f != nullptr, path, ": cannot write the profile");
  std::fprintf(f, "{\"displayTimeUnit\": \"ms\", \"traceEvents\": [\n");
  std::fprintf(f, "{\"name\": \"process_name\", \"ph\": \"M\", \"pid\": %d, \"args\": {\"name\": \"rank %d\"}}", process,
               process);
  for (const Event& e : recorded) {
    if (e.end_us < e.begin_us) continue;  // still open when the window closed
    std::fprintf(f, ",\n{\"name\": ");
    write_json_string(f, e.name);
    std::fprintf(f, ", \"cat\": \"spin\", \"ph\": \"X\", \"pid\": %d, \"tid\": %d, \"ts\": %.3f, \"dur\": %.3f", process,
                 e.thread, e.begin_us, e.end_us - e.begin_us);
    if (e.arg_name != nullptr) {
      std::fprintf(f, ", \"args\": {");
      write_json_string(f, e.arg_name);
      std::fprintf(f, ": %lld}", static_cast<long long>(e.value));
    }
    std::fputc('}', f);
  }
  std::fprintf(f, "\n]}\n");
  const bool ok = std::ferror(f) == 0;
  require(std::fclose(f) == 0 && ok, path, ": writing the profile failed");
}

Range::Range(const char* name, const char* arg_name, std::int64_t value) {
  if (!on) return;
  const std::lock_guard<std::mutex> guard(lock);
  if (!on) return;
  index_ = static_cast<std::int64_t>(events.size());
  window_ = window;
  events.push_back({name, arg_name, value, thread_number(), now_us(), -1.0});
  pushed_ = device;
  if (pushed_ != nullptr) pushed_->push(name);
}

Range::~Range() {
  if (index_ < 0) return;
  const double end = now_us();
  const std::lock_guard<std::mutex> guard(lock);
  if (pushed_ != nullptr) pushed_->pop();
  if (!on || window_ != window) return;  // the window closed (and perhaps another opened) meanwhile
  events[static_cast<std::size_t>(index_)].end_us = end;
}

}  // namespace spin::profile
