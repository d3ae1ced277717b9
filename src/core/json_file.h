// A JSON file read whole and parsed: one error naming the file when it cannot be opened or is
// not valid JSON (the model directory's index, tokenizer and generation configs).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace spin {

nlohmann::json read_json_file(const std::string& path);

}  // namespace spin
