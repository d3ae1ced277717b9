// Files read whole: one error naming the file when it cannot be opened (or, for JSON, is not
// valid JSON) -- config.json, the safetensors index, the tokenizer and generation configs.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace spin {

// The file's text; `hint` follows "cannot open" in the error.
std::string read_text_file(const std::string& path, const std::string& hint = "");
nlohmann::json read_json_file(const std::string& path);

}  // namespace spin
