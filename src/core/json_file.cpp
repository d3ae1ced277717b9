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

nlohmann::json read_json_file(const std::string& path) {
  const std::string text = read_text_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    fail(path, ": not valid JSON: ", e.what());
  }
}

}  // namespace spin
