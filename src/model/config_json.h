// Readers of config.json's keys for ModelConfig::from_json and the family parsers
// (model/config_families.h): each throws spin::Error naming the file (`source`) and the key.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"

namespace spin::model::config_json {

inline std::int64_t positive_int(const nlohmann::json& j, const char* key, const std::string& source) {
  require(j.contains(key), source, ": missing required key \"", key, "\"");
  const nlohmann::json& v = j.at(key);
  require(v.is_number_integer() && v.get<std::int64_t>() > 0, source, ": \"", key,
          "\" must be a positive integer, got ", v.dump());
  return v.get<std::int64_t>();
}

// A non-negative integer key, `fallback` where it is absent or null.
inline std::int64_t non_negative_int(const nlohmann::json& j, const char* key, std::int64_t fallback,
                                     const std::string& source) {
  const nlohmann::json v = j.contains(key) && !j.at(key).is_null() ? j.at(key) : nlohmann::json(fallback);
  require(v.is_number_integer() && v.get<std::int64_t>() >= 0, source, ": \"", key, "\" must be an integer >= 0, got ",
          v.dump());
  return v.get<std::int64_t>();
}

inline float positive_float(const nlohmann::json& j, const char* key, const std::string& source) {
  const nlohmann::json& v = j.at(key);
  require(v.is_number() && v.get<double>() > 0, source, ": \"", key, "\" must be a positive number, got ", v.dump());
  return v.get<float>();
}

// A boolean key, `fallback` where it is absent.
inline bool flag(const nlohmann::json& j, const char* key, bool fallback, const std::string& source) {
  if (!j.contains(key)) return fallback;
  require(j.at(key).is_boolean(), source, ": \"", key, "\" must be true or false, got ", j.at(key).dump());
  return j.at(key).get<bool>();
}

}  // namespace spin::model::config_json
