// FileSizeLimit: while it lives, writes past `bytes` fail (EFBIG) as a full disk or an exceeded quota
// makes them fail -- RLIMIT_FSIZE's soft limit, SIGXFSZ ignored so that the write returns the error
// instead of killing the process.
#pragma once

#include <sys/resource.h>

#include <csignal>

namespace spin::testing {

class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, SIG_IGN);
    rlimit limit = saved_;
    limit.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, SIG_DFL);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  rlimit saved_{};
};

}  // namespace spin::testing
