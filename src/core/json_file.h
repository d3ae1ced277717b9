// Files read whole: one error naming the file when it cannot be opened (or, for JSON, is not
// valid JSON) -- config.json, the safetensors index, the tokenizer and generation configs.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"

namespace spin {

// The file's text; `hint` follows "cannot open" in the error.
std::string read_text_file(const std::string& path, const std::string& hint = "");

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
