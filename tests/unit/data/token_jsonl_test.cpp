#include "data/token_jsonl.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace spin::data {
namespace {

namespace fs = std::filesystem;

std::string write(const std::string& name, const std::string& text) {
  const fs::path p = fs::temp_directory_path() / ("spin_" + std::to_string(::getpid()) + "_" + name);
  std::ofstream(p) << text;
  return p.string();
}

std::string error_of(const std::string& text) {
  const std::string p = write("bad.jsonl", text);
  try {
    read_token_jsonl(p);
  } catch (const Error& e) {
    fs::remove(p);
    return e.what();
  }
  fs::remove(p);
  return "";
}

TEST(TokenJsonl, ReadsBothFormsAndSkipsBlankLines) {
  const std::string p = write("ok.jsonl",
                              "{\"tokens\": [1, 2, 3], \"mask_from\": 2}\n\n"
                              "{\"prompt\": [4, 5], \"response\": [6]}\n{\"tokens\": [7, 8]}\n");
  const auto r = read_token_jsonl(p);
  fs::remove(p);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].mask_from, 2);
  EXPECT_EQ(r[1].tokens, (std::vector<std::int32_t>{4, 5, 6}));
  EXPECT_EQ(r[1].mask_from, 2);
  EXPECT_EQ(r[1].line, 3);
  EXPECT_EQ(r[2].mask_from, 1);
}

TEST(TokenJsonl, ErrorsNameTheFileAndLine) {
  EXPECT_NE(error_of("{\"tokens\": [1, 2]}\n{\"tokens\": [1, \"x\"]}\n").find(":2: \"tokens\" holds \"x\""),
            std::string::npos);
  EXPECT_NE(error_of("{\"tokens\": [1, 2]\n").find(":1: not valid JSON"), std::string::npos);
  EXPECT_NE(error_of("{\"tokens\": [1, 2], \"mask_from\": 0}").find("mask_from"), std::string::npos);
  EXPECT_NE(error_of("{\"prompt\": [], \"response\": [1]}").find("\"prompt\" is empty"), std::string::npos);
  EXPECT_NE(error_of("{\"text\": \"hi\"}").find("expected {\"tokens\""), std::string::npos);
  EXPECT_NE(error_of("").find("no records"), std::string::npos);
  EXPECT_NE(error_of("{\"tokens\": [-1]}").find("not a token id"), std::string::npos);
}

TEST(TokenJsonl, ValidationNamesOutOfRangeIdsAndOverlongLines) {
  std::vector<TokenRecord> r = {{{1, 2}, 1, 1}, {{3, 300}, 1, 4}};
  try {
    validate_token_records(r, "in.jsonl", 256, 10);
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "in.jsonl:4: token id 300 is outside the vocabulary [0, 256)");
  }
  EXPECT_THROW(validate_token_records(r, "in.jsonl", 1000, 1), Error);
}

}  // namespace
}  // namespace spin::data
