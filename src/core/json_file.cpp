#include "core/json_file.h"

#include <fstream>
#include <sstream>

#include "core/error.h"

namespace spin {

std::string read_text_file(const std::string& path, const std::string& hint) {
  std::ifstream in(path);
  require(in.good(), path, ": cannot open", hint);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace spin
