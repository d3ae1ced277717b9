#include "data/token_jsonl.h"

#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace spin::data {

namespace {
using nlohmann::json;

std::vector<std::int32_t> id_list(const json& j, const char* key, const std::string& where) {
  require(j.contains(key), where, ": missing \"", key, "\"");
  const json& list = j.at(key);
  require(list.is_array(), where, ": \"", key, "\" must be a list of token ids");
  std::vector<std::int32_t> ids;
  ids.reserve(list.size());
  for (const json& id : list) {
    require(id.is_number_integer() && id.get<std::int64_t>() >= 0 &&
                id.get<std::int64_t>() <= std::numeric_limits<std::int32_t>::max(),
            where, ": \"", key, "\" holds ", id.dump(), ", not a token id");
    ids.push_back(static_cast<std::int32_t>(id.get<std::int64_t>()));
  }
  return ids;
}

json parse_object(const std::string& text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    fail(where, ": not valid JSON (", e.what(), ")");
  }
  require(j.is_object(), where, ": expected a JSON object");
  return j;
}

// Calls fn(text, "path:line", line) for every non-blank line; at least one must exist.
template <class Fn>
void for_each_line(const std::string& path, Fn fn) {
  std::ifstream in(path);
  require(in.good(), path, ": cannot open");
  std::string text;
  bool any = false;
  for (std::int64_t line = 1; std::getline(in, text); ++line) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    fn(text, cat(path, ":", line), line);
    any = true;
  }
  require(in.eof(), path, ": read error");
  require(any, path, ": no records (the file is empty)");
}

TokenRecord parse_record(const std::string& text, const std::string& where) {
  const json j = parse_object(text, where);
  TokenRecord r;
  if (j.contains("tokens")) {
    r.tokens = id_list(j, "tokens", where);
    if (j.contains("mask_from")) {
      const json& k = j.at("mask_from");
      require(k.is_number_integer(), where, ": \"mask_from\" must be an integer");
      r.mask_from = k.get<std::int64_t>();
    }
    require(!r.tokens.empty(), where, ": \"tokens\" is empty");
    require(r.mask_from >= 1 && r.mask_from <= static_cast<std::int64_t>(r.tokens.size()),
            where, ": \"mask_from\" ", r.mask_from, " must be in [1, ", r.tokens.size(),
            "] (the first token has no prediction)");
  } else if (j.contains("prompt")) {
    r.tokens = id_list(j, "prompt", where);
    require(!r.tokens.empty(), where, ": \"prompt\" is empty; it needs at least one token");
    r.mask_from = static_cast<std::int64_t>(r.tokens.size());
    const auto response = id_list(j, "response", where);
    r.tokens.insert(r.tokens.end(), response.begin(), response.end());
  } else {
    fail(where, ": expected {\"tokens\": [...]} or {\"prompt\": [...], \"response\": [...]}");
  }
  return r;
}
}  // namespace

std::vector<TokenRecord> read_token_jsonl(const std::string& path) {
  std::vector<TokenRecord> records;
  for_each_line(path, [&](const std::string& text, const std::string& where, std::int64_t line) {
    TokenRecord r = parse_record(text, where);
    r.line = line;
    records.push_back(std::move(r));
  });
  return records;
}

std::vector<std::vector<std::int32_t>> read_prompt_jsonl(const std::string& path) {
  std::vector<std::vector<std::int32_t>> prompts;
  for_each_line(path, [&](const std::string& text, const std::string& where, std::int64_t) {
    const json j = parse_object(text, where);
    const char* key = j.contains("prompt") ? "prompt" : "tokens";
    require(j.contains(key), where, ": expected {\"prompt\": [token ids...]}");
    prompts.push_back(id_list(j, key, where));
    require(!prompts.back().empty(), where, ": the prompt is empty");
  });
  return prompts;
}

void validate_token_records(const std::vector<TokenRecord>& records, const std::string& path,
                            std::int64_t vocab_size, std::int64_t max_length) {
  for (const TokenRecord& r : records) {
    require(static_cast<std::int64_t>(r.tokens.size()) <= max_length, path, ":", r.line, ": ",
            r.tokens.size(), " tokens; the model allows at most ", max_length);
    for (std::int32_t id : r.tokens) {
      require(id < vocab_size, path, ":", r.line, ": token id ", id,
              " is outside the vocabulary [0, ", vocab_size, ")");
    }
  }
}

}  // namespace spin::data
