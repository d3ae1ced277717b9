// The profiling window of a training command (core/profile.h): steps start..end, numbered from 1
// as the log numbers them. It opens before step `start`, closes after step `end` -- or where the
// run ends inside it -- and every rank writes its trace to <folder>/rank<r>.json.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace spin::app {

class ProfileWindow {
 public:
  // `end` 0 means `start`; start 0: no window. `rank`: this process's world rank (its file's
  // name; rank 0 reports). Throws spin::Error naming `start_key` and `end_key` for a window
  // that is not one (negative, end < start).
  ProfileWindow(std::int64_t start, std::int64_t end, std::filesystem::path folder, int rank,
                const std::string& start_key, const std::string& end_key);
  ProfileWindow(const ProfileWindow&) = delete;
  ProfileWindow& operator=(const ProfileWindow&) = delete;

  // `step`: the step about to run / just done (1-based).
  void before_step(std::int64_t step);
  void after_step(std::int64_t step);
  // Closes a window the run ended inside.
  void finish();
  // What the log says about a window that has closed since the last call ("" otherwise).
  std::string take_report();
  // Prints take_report() on world rank 0 as "<command>: ...", when there is one.
  void report(const char* command);

 private:
  void close(std::int64_t last_step);

  std::int64_t start_, end_;
  std::filesystem::path folder_;
  int rank_;
  std::string report_;
  std::int64_t last_step_ = 0;  // the last step run inside the window
};

}  // namespace spin::app
