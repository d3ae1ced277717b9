#include "core/json_file.h"

#include <fstream>
#include <sstream>

#include "core/error.h"

namespace spin {

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  require(in.good(), path, ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  try {
    return nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::parse_error& e) {
    fail(path, ": not valid JSON: ", e.what());
  }
}

}  // namespace spin
