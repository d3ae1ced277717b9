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

void write_text_file(const std::string& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  require(out.good(), path, ": cannot create");
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  close_checked(out, path);
}

void close_checked(std::ofstream& out, const std::string& path) {
  out.close();
  if (out.fail()) write_failed(path);
}

void write_failed(const std::string& path) { fail(path, ": write failed (a full disk or an I/O error?)"); }

}  // namespace spin
