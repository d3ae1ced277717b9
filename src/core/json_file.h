// Files read and written whole: one error naming the file when it cannot be opened (or, for JSON,
// is not valid JSON) or written -- config.json, the safetensors index, the tokenizer and generation
// configs, `latest`.
#pragma once

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/error.h"

namespace spin {

// The file's text; `hint` follows "cannot open" in the error.
std::string read_text_file(const std::string& path, const std::string& hint = "");

// Writes `text` as the file `path` (replacing it), every byte checked: the close's too.
void write_text_file(const std::string& path, std::string_view text);

// Closes `out` (written as `path`) and fails naming it where any write failed -- the buffered bytes
// only the close writes included: a full disk or an exceeded quota often shows there first, after
// every `<<` looked fine.
void close_checked(std::ofstream& out, const std::string& path);

// Throws the error of a write to `path` that failed: "<path>: write failed (a full disk or an I/O
// error?)" -- errno says no more: a short write (the disk filled within it) leaves it unset.
[[noreturn]] void write_failed(const std::string& path);

// The file parsed as `Json`: nlohmann::json, or nlohmann::ordered_json where the keys' order in the
// file matters (a PEFT adapter's rank_pattern).
template <class Json = nlohmann::json>
Json read_json_file(const std::string& path) {
  const std::string text = read_text_file(path);
  try {
    return Json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    fail(path, ": not valid JSON: ", e.what());
  }
}

}  // namespace spin
