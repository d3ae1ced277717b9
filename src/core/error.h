// spin::Error is the one exception type the code below main() throws for bad input, impossible
// configurations and failed library calls. Its message names the input (file, line, tensor,
// option). main() catches it, prints "spin: error: rank R: <message>" and aborts the whole job.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace spin {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// cat("layer ", 3, " of ", 8) -> "layer 3 of 8"
template <class... Args>
std::string cat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

template <class... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(cat(args...));
}

// Throws spin::Error with the concatenated message when `ok` is false. The message is only
// formatted on failure, so this is cheap enough for per-call (not per-element) checks.
template <class... Args>
void require(bool ok, const Args&... args) {
  if (!ok) fail(args...);
}

}  // namespace spin
