// One case of a tokenizer fixture's cases.json (a text, its reference ids, decoded text and pre-tokenizer
// pieces), checked against spin's tokenizer: the ids, the decoded text, and -- for a non-empty text --
// the pieces.
#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/hf_bpe_tokenizer.h"

namespace spin::data {

inline void expect_reference_case(const HfBpeTokenizer& t, const nlohmann::json& c) {
  const std::string text = c.at("text");
  SCOPED_TRACE(printable(text));
  EXPECT_EQ(t.encode(text), c.at("ids").get<std::vector<std::int32_t>>());
  EXPECT_EQ(t.decode(c.at("ids").get<std::vector<std::int32_t>>()), c.at("decoded").get<std::string>());
  std::vector<std::string> pieces;
  for (std::string_view p : t.pre_tokenize(text)) pieces.emplace_back(p);
  if (!text.empty()) {
    EXPECT_EQ(pieces, c.at("pieces").get<std::vector<std::string>>());
  }
}

}  // namespace spin::data
