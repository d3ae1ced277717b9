// Profiling ranges for a window of steps (Megatron's --profile-step-start / --profile-step-end):
// named, nested time ranges -- a step, its generation, reference scoring, every pipeline
// forward and backward with its micro-batch, each point-to-point exchange, the optimizer -- kept
// in memory while profiling is on and written by stop() as a Chrome trace (chrome://tracing,
// ui.perfetto.dev), one file per rank. A device backend may install hooks (the CUDA backend:
// NVTX ranges for Nsight Systems, cudaProfilerStart/Stop around the window), so core/ carries no
// CUDA code. Off, a Range costs one load and a branch.
//
// The times are the host's: on a GPU a range ends when the host has issued its work (kernels
// run asynchronously; communication and copies to the host wait for them), so for device time
// use Nsight Systems with the NVTX ranges (`nsys profile --capture-range=cudaProfilerApi`).
#pragma once

#include <cstdint>
#include <string>

namespace spin::profile {

// What a device backend adds to every range and to the window.
class DeviceHooks {
 public:
  virtual ~DeviceHooks() = default;
  virtual void push(const char* name) = 0;  // a range opens (nested)
  virtual void pop() = 0;                   // the innermost range closes
  virtual void start() = 0;                 // the window opens
  virtual void stop() = 0;                  // the window closes
};
// Installs a backend's hooks (nullptr removes them).
void register_device_hooks(DeviceHooks* hooks);

// Opens the window on this process: ranges are recorded from now on. `process` names the trace's
// process (the rank).
void start(int process);
// Closes the window and writes what it recorded to `path` as a Chrome trace (JSON); spin::Error
// naming the file when it cannot be written. A no-op when the window is not open.
void stop(const std::string& path);
bool active();

// A range: from construction to destruction, named `name`, with an optional integer argument
// `arg_name` = `value` (a micro-batch, a step); both string literals (kept, not copied). Ranges
// on one thread nest.
class Range {
 public:
  explicit Range(const char* name, const char* arg_name = nullptr, std::int64_t value = 0);
  ~Range();
  Range(const Range&) = delete;
  Range& operator=(const Range&) = delete;

 private:
  std::int64_t index_ = -1;  // its record, when opened in a window
  std::int64_t window_ = 0;  // which window
  DeviceHooks* pushed_ = nullptr;  // the hooks it opened a device range with
};

}  // namespace spin::profile
