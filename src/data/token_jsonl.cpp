#include "data/token_jsonl.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/jsonl.h"
#include "data/records.h"

namespace spin::data {

namespace {
using nlohmann::json;
using jsonl::id_list;

TokenRecord parse_record(const json& j, const std::string& where) {
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
  for_each_record(path, {"tokens", "mask_from", "prompt", "response"}, [&](const Record& record) {
    TokenRecord r = parse_record(record.object(), record.where());
    r.line = record.line();
    records.push_back(std::move(r));
  });
  return records;
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
