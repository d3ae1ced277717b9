// What the ModelConfig tests share: a Llama-2-7B config.json, edits of it, and the error a
// config.json gives.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "model/config.h"

namespace spin::model::config_testing {

inline const char* kLlama = R"({
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 32000,
  "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
  "num_attention_heads": 32, "max_position_embeddings": 4096, "rms_norm_eps": 1e-05,
  "hidden_act": "silu", "rope_scaling": null, "tie_word_embeddings": false,
  "bos_token_id": 1, "eos_token_id": 2})";

inline std::string with(const std::string& key, const std::string& value) {
  std::string s = kLlama;
  const auto at = s.find("\"" + key + "\"");
  if (at == std::string::npos) return s.substr(0, s.size() - 1) + ", \"" + key + "\": " + value + "}";
  const auto colon = s.find(':', at);
  const auto end = s.find_first_of(",}", colon);
  return s.substr(0, colon + 1) + " " + value + s.substr(end);
}

inline std::string without(const std::string& key) {
  std::string s = kLlama;
  const auto at = s.find("\"" + key + "\"");
  const auto end = s.find_first_of(",}", at);
  return s.substr(0, at) + s.substr(s[end] == ',' ? end + 1 : end);
}

// `json` with each edit's text replaced once (a missing one fails the test).
inline std::string replaced(std::string json, const std::vector<std::pair<std::string, std::string>>& edits) {
  for (const auto& [from, to] : edits) {
    const auto at = json.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) json.replace(at, from.size(), to);
  }
  return json;
}

inline std::string error_of(const std::string& json) {
  try {
    ModelConfig::from_json(json, "cfg.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace spin::model::config_testing
