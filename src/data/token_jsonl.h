// JSONL files of token-id sequences, one JSON object per line, in either form:
//   {"tokens": [ids...], "mask_from": k}   (k optional, default 1)
//   {"prompt": [ids...], "response": [ids...]}   (mask_from = len(prompt))
// Every problem is an error naming the file and the line. Blank lines are skipped.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace spin::data {

struct TokenRecord {
  std::vector<std::int32_t> tokens;
  std::int64_t mask_from = 1;  // first position whose log-probability counts (1 <= k <= len)
  std::int64_t line = 0;       // 1-based line in the file
};

std::vector<TokenRecord> read_token_jsonl(const std::string& path);

// Checks ids against the vocabulary and lengths against the model's limit.
void validate_token_records(const std::vector<TokenRecord>& records, const std::string& path,
                            std::int64_t vocab_size, std::int64_t max_length);

}  // namespace spin::data
