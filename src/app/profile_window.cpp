#include "app/profile_window.h"

#include <cstdio>
#include <system_error>
#include <utility>

#include "core/error.h"
#include "core/profile.h"

namespace spin::app {

ProfileWindow::ProfileWindow(std::int64_t start, std::int64_t end, std::filesystem::path folder, int rank,
                             const std::string& start_key, const std::string& end_key)
    : start_(start), end_(start > 0 && end == 0 ? start : end), folder_(std::move(folder)), rank_(rank) {
  require(start_ >= 0 && (start_ == 0 ? end_ == 0 : end_ >= start_), start_key, " (", start, ") .. ", end_key, " (",
          end, ") is no window of steps (1-based, start <= end; start 0: no profiling)");
}

void ProfileWindow::before_step(std::int64_t step) {
  if (start_ == 0 || step != start_) return;
  std::error_code ignored;  // every rank makes the folder; is_directory says whether one did
  std::filesystem::create_directories(folder_, ignored);
  require(std::filesystem::is_directory(folder_), folder_.string(), ": cannot create the profile folder");
  profile::start(rank_);
}

void ProfileWindow::after_step(std::int64_t step) {
  if (!profile::active()) return;
  last_step_ = step;
  if (step == end_) close(step);
}

void ProfileWindow::finish() {
  if (profile::active()) close(last_step_);
}

void ProfileWindow::close(std::int64_t last_step) {
  profile::stop((folder_ / cat("rank", rank_, ".json")).string());
  report_ = cat("profiled steps ", start_, "..", last_step, ": ", folder_.string(),
                "/rank<r>.json (Chrome traces: ui.perfetto.dev; jobs/profile_summary.py)");
}

std::string ProfileWindow::take_report() { return std::exchange(report_, std::string()); }

void ProfileWindow::report(const char* command) {
  const std::string text = take_report();
  if (rank_ != 0 || text.empty()) return;
  std::printf("%s: %s\n", command, text.c_str());
  std::fflush(stdout);
}

}  // namespace spin::app
