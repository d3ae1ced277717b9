// Moonshot AI's tiktoken.model tokenizers (Moonlight, Kimi K2) against tiktoken itself
// (tests/data/kimi, make_kimi_fixture.py: 1,457 ranks learned over the script's texts, Moonlight's
// special tokens after them): 382 texts -- the other expressions' edge cases and random strings, and
// Kimi's own (Han runs beside kana, hangul and Latin; Han that is not a letter; "/" after
// punctuation; special tokens' text; pieces longer than 32 bytes, whose merges go through a heap) --
// give tiktoken's ids, the expression's pieces and the decoded text; runs past 25,000 code points are
// cut as Moonshot's wrappers cut them. (The kimi chat
// template over this tokenizer: prompt_template_test.cpp.)
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/scratch_dir.h"
#include "common/test_util.h"
#include "data/hf_bpe_tokenizer.h"
#include "unit/data/tokenizer_cases.h"

namespace spin::data {
namespace {

namespace fs = std::filesystem;

const std::string kDir = std::string(SPIN_TEST_DATA_DIR) + "/kimi";

TEST(TiktokenTokenizer, MatchesTiktokenUnderKimisExpression) {
  const HfBpeTokenizer t(kDir + "/tiktoken.model");
  std::ifstream in(kDir + "/cases.json");
  int checked = 0, long_runs = 0;
  for (const nlohmann::json& c : nlohmann::json::parse(in)) {
    if (c.contains("repeat")) {  // head + unit * count + tail, its ids as [id, repeats] runs
      const nlohmann::json& r = c.at("repeat");
      std::string text = r.at(0).get<std::string>();
      for (int k = 0; k < r.at(2).get<int>(); ++k) text += r.at(1).get<std::string>();
      text += r.at(3).get<std::string>();
      std::vector<std::int32_t> ids;
      for (const nlohmann::json& run : c.at("id_runs")) ids.insert(ids.end(), run.at(1).get<std::size_t>(), run.at(0));
      EXPECT_EQ(t.encode(text), ids) << "a run of " << r.at(2) << " x " << printable(r.at(1).get<std::string>());
      EXPECT_EQ(t.decode(ids), text);
      ++long_runs;
      continue;
    }
    expect_reference_case(t, c);
    ++checked;
  }
  EXPECT_EQ(checked, 382);
  EXPECT_EQ(long_runs, 4);
}

// The wrappers' cut by itself: 400,000-code-point chunks, runs of whitespace (Python's isspace, which
// counts U+001C-U+001F) or of anything else no longer than 25,000 code points.
TEST(TiktokenTokenizer, LongRunsAreCutAsMoonshotsWrappersCutThem) {
  const auto sizes = [](std::string_view text) {
    std::vector<std::size_t> out;
    for (std::string_view part : HfBpeTokenizer::long_runs(text)) out.push_back(part.size());
    return out;
  };
  EXPECT_EQ(sizes("ab  cd"), std::vector<std::size_t>{6});
  EXPECT_EQ(sizes(std::string(25'000, 'a')), std::vector<std::size_t>{25'000});
  EXPECT_EQ(sizes(std::string(25'001, 'a')), (std::vector<std::size_t>{25'000, 1}));
  EXPECT_EQ(sizes(" " + std::string(50'001, 'a')), (std::vector<std::size_t>{25'001, 25'000, 1}));
  EXPECT_EQ(sizes(std::string(25'001, '\x1c') + "x"), (std::vector<std::size_t>{25'000, 2}));
  std::string han;  // 3 bytes a code point: the cut counts code points
  for (int k = 0; k < 25'001; ++k) han += "中";
  EXPECT_EQ(sizes(han), (std::vector<std::size_t>{75'000, 3}));
  std::string chunks;  // 400,000-code-point chunks first, each cut on its own
  for (int k = 0; k < 40'001; ++k) chunks += "abcdefghi ";
  EXPECT_EQ(sizes(chunks), (std::vector<std::size_t>{400'000, 10}));
}

// The model folder: tiktoken.model read when there is no tokenizer.json; the special tokens after the
// ranks named by tokenizer_config.json's added_tokens_decoder, the others <|reserved_token_{id}|>, all
// read in a text; BOS and EOS as tokenizer_config.json names them.
TEST(TiktokenTokenizer, SpecialTokensAfterTheRanksFromAModelDirectory) {
  const auto t = Tokenizer::load(kDir);
  constexpr std::int32_t kRanks = 1457;
  EXPECT_EQ(t->vocab_size(), kRanks + 256);
  EXPECT_EQ(t->token_id("[BOS]"), kRanks);
  EXPECT_EQ(t->token_id("<|im_end|>"), kRanks + 2);
  EXPECT_EQ(t->token_id("<|im_middle|>"), kRanks + 17);
  EXPECT_EQ(t->token_id("<|reserved_token_" + std::to_string(kRanks + 5) + "|>"), kRanks + 5);
  EXPECT_EQ(t->token_id("<|reserved_token_" + std::to_string(kRanks + 255) + "|>"), kRanks + 255);
  EXPECT_EQ(t->bos_id(), kRanks);
  EXPECT_EQ(t->eos_id(), kRanks + 1);
  EXPECT_EQ(t->special_text(kRanks + 3), "<|im_user|>");
  const std::vector<std::int32_t> ids = t->encode("hi<|im_end|>");
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids.back(), kRanks + 2);
  EXPECT_EQ(t->decode(ids), "hi");
  EXPECT_EQ(decode_showing_specials(*t, ids), "hi<|im_end|>");
  EXPECT_NE(t->chat_template().find("<|im_assistant|>assistant<|im_middle|>"), std::string::npos);
}

TEST(TiktokenTokenizer, MalformedFilesAreRefusedByName) {
  const testing::ScratchDir scratch("spin_tiktoken_refused");
  const fs::path& dir = scratch.path();
  std::ifstream in(kDir + "/tiktoken.model");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  const auto refused = [&](std::vector<std::string> changed, const std::string& what) {
    std::ofstream out(dir / "tiktoken.model");
    for (const std::string& line : changed) out << line << "\n";
    out.close();
    const std::string e = testing::error_of([&] { HfBpeTokenizer t((dir / "tiktoken.model").string()); });
    EXPECT_NE(e.find((dir / "tiktoken.model").string()), std::string::npos) << e;
    EXPECT_NE(e.find(what), std::string::npos) << e;
  };
  auto changed = lines;
  changed[300] = "aGVsbG8=";
  refused(changed, "line 301 is not \"base64 rank\"");
  changed = lines;
  changed[300] = "a*b= 300";
  refused(changed, "is not base64");
  changed = lines;
  changed[300] = changed[299].substr(0, changed[299].find(' ')) + " 300";
  refused(changed, "the token of rank 300 is empty or repeats an earlier one");
  changed = lines;
  changed[300] = changed[300].substr(0, changed[300].find(' ')) + " 299";
  refused(changed, "rank 299 is given twice");
  changed = lines;
  changed[300] = changed[300].substr(0, changed[300].find(' ')) + " 5000";
  refused(changed, "rank 5000 is outside [0, 1457)");
  changed = lines;
  changed.erase(changed.begin() + 65);  // the byte "A"
  for (std::size_t k = 65; k < changed.size(); ++k) {
    changed[k] = changed[k].substr(0, changed[k].find(' ')) + " " + std::to_string(k);
  }
  refused(changed, "the vocabulary lacks byte 65");
  // An added token among the ranks.
  std::ofstream(dir / "tokenizer_config.json") << R"({"added_tokens_decoder": {"7": {"content": "<x>"}}})";
  refused(lines, "added_tokens_decoder \"7\" must be an id from 1457");
}

}  // namespace
}  // namespace spin::data
