#include "data/token_jsonl.h"

#include <gtest/gtest.h>

#include <fstream>

#include "common/scratch_dir.h"
#include "core/error.h"

namespace spin::data {
namespace {

// `text` as the file `name` of the test process's scratch directory (removed at exit).
std::string write(const std::string& name, const std::string& text) {
  static const testing::ScratchDir dir("spin_token_jsonl");
  std::ofstream(dir / name) << text;
  return dir.file(name);
}

std::string error_of(const std::string& text) {
  const std::string p = write("bad.jsonl", text);
  try {
    read_token_jsonl(p);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(TokenJsonl, ReadsBothFormsAndSkipsBlankLines) {
  const std::string p = write("ok.jsonl",
                              "{\"tokens\": [1, 2, 3], \"mask_from\": 2}\n\n"
                              "{\"prompt\": [4, 5], \"response\": [6]}\n{\"tokens\": [7, 8]}\n");
  const auto r = read_token_jsonl(p);
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
