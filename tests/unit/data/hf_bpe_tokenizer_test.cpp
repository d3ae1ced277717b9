// Byte-level BPE tokenizer.json files against Hugging Face `tokenizers` (the oracle that made
// tests/data/hf_bpe: make_hf_bpe_fixtures.py): for a Llama-3-style, a GPT-2-style, a
// Qwen2-style tokenizer (NFC normalizer; its texts add what NFC changes), an o200k-style one
// (added tokens that strip the whitespace beside them), a StarCoder-style one (Granite 3's:
// digits split before the expression) and a DeepSeek-V3-style one (three Splits in sequence), 340-355 texts each (edge
// cases of the expressions and random strings of letters, digits, scripts, whitespace kinds, punctuation, emoji,
// special tokens) give the same pre-tokenizer pieces, the same ids and the same decoded text; specials come from
// tokenizer_config.json; unsupported files are refused by name. Mistral's Tekken against mistral-common; the Unicode
// classes and NFC against Python's unicodedata. (The chat templates over these fixtures: prompt_template_test.cpp.)
#include "data/hf_bpe_tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "common/scratch_dir.h"
#include "common/test_util.h"
#include "data/unicode_classes.h"
#include "unit/data/tokenizer_cases.h"

namespace spin::data {
namespace {

namespace fs = std::filesystem;

nlohmann::json cases(const std::string& kind) {
  std::ifstream in(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/" + kind + "/cases.json");
  return nlohmann::json::parse(in);
}

// `pieces_expected`: texts without added tokens, whose pieces `tokenizers` gives too.
void expect_oracle_agrees(const std::string& kind, bool prefix_space, int cases_expected = 340,
                          int pieces_expected = 300) {
  const HfBpeTokenizer t(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/" + kind + "/tokenizer.json");
  int checked = 0, pieces_checked = 0;
  for (const nlohmann::json& c : cases(kind)) {
    const std::string text = c.at("text");
    SCOPED_TRACE(kind + ": " + printable(text));
    EXPECT_EQ(t.encode(text), c.at("ids").get<std::vector<std::int32_t>>());
    EXPECT_EQ(t.decode(c.at("ids").get<std::vector<std::int32_t>>()), c.at("decoded").get<std::string>());
    if (!c.at("pieces").is_null()) {
      std::string input = prefix_space && !text.empty() && text.front() != ' ' ? " " + text : text;
      if (kind == "qwen2" || kind == "gpt_neox") input = unicode::nfc(input);  // the normalized text's pieces
      std::vector<std::string> got;
      for (std::string_view p : t.pre_tokenize(input)) got.emplace_back(p);
      if (!text.empty()) {  // (tokenizers gives no piece for an empty text, spin none to encode)
        EXPECT_EQ(got, c.at("pieces").get<std::vector<std::string>>());
        ++pieces_checked;
      }
    }
    ++checked;
  }
  EXPECT_EQ(checked, cases_expected);
  EXPECT_GT(pieces_checked, pieces_expected);
}

TEST(HfBpeTokenizer, Llama3StyleMatchesHuggingFaceTokenizers) { expect_oracle_agrees("llama3", false); }

TEST(HfBpeTokenizer, Gpt2StyleWithPrefixSpaceMatchesHuggingFaceTokenizers) { expect_oracle_agrees("gpt2", true); }

TEST(HfBpeTokenizer, Qwen2StyleWithNfcMatchesHuggingFaceTokenizers) { expect_oracle_agrees("qwen2", false, 348); }

// GPT-NeoX-20B's and Pythia's layout: NFC, ByteLevel with GPT-2's expression, and runs of 2-24
// spaces as normalized added tokens -- matched, as `tokenizers` does, in each stretch's NFC output
// after the special tokens (an indented line is one space-run token, then its word).
TEST(HfBpeTokenizer, GptNeoxSpaceRunsAfterNfcMatchHuggingFaceTokenizers) {
  expect_oracle_agrees("gpt_neox", false, 349);
  const HfBpeTokenizer t(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/gpt_neox/tokenizer.json");
  const std::vector<std::int32_t> ids = t.encode("a" + std::string(30, ' ') + "b");
  ASSERT_EQ(ids.size(), 4u);
  EXPECT_EQ(*t.token_id(std::string(24, ' ')), ids[1]);  // the longest run first
  EXPECT_EQ(*t.token_id(std::string(6, ' ')), ids[2]);
}

// StarCoder's pre-tokenizer (Granite 3's): Digits with individual_digits before ByteLevel's GPT-2
// expression -- every number, of any script (\p{N}: Roman numerals, fractions, superscripts), a piece
// of its own, the spaces before digits pieces apart.
TEST(HfBpeTokenizer, DigitsThenByteLevelMatchesHuggingFaceTokenizers) {
  expect_oracle_agrees("granite", false);
  const HfBpeTokenizer t(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/granite/tokenizer.json");
  std::vector<std::string> pieces;
  for (std::string_view p : t.pre_tokenize("x 12\u00bd, ab3")) pieces.emplace_back(p);
  EXPECT_EQ(pieces, (std::vector<std::string>{"x", " ", "1", "2", "\u00bd", ",", " ab", "3"}));
  // Runs of digits (individual_digits false) stay whole; a space put in front of each digit's piece
  // (add_prefix_space after Digits) is refused by name.
  const testing::ScratchDir scratch("spin_digits");
  const fs::path& dir = scratch.path();
  std::ifstream in(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/granite/tokenizer.json");
  nlohmann::json j = nlohmann::json::parse(in);
  j["pre_tokenizer"]["pretokenizers"][0]["individual_digits"] = false;
  std::ofstream((dir / "tokenizer.json").string()) << j.dump();
  const HfBpeTokenizer runs((dir / "tokenizer.json").string());
  pieces.clear();
  for (std::string_view p : runs.pre_tokenize("x 12\u00bd, ab3")) pieces.emplace_back(p);
  EXPECT_EQ(pieces, (std::vector<std::string>{"x", " ", "12\u00bd", ",", " ab", "3"}));
  j["pre_tokenizer"]["pretokenizers"][1]["add_prefix_space"] = true;
  std::ofstream((dir / "tokenizer.json").string(), std::ios::trunc) << j.dump();
  const std::string e = testing::error_of([&] { HfBpeTokenizer bad((dir / "tokenizer.json").string()); });
  EXPECT_NE(e.find("ByteLevel with add_prefix_space after Digits is not supported"), std::string::npos) << e;
}

// DeepSeek-V3's pre-tokenizer (V3's, R1's, V3.1's): three Isolated Splits, each over the pieces of the one
// before -- numbers of up to three digits (any script's), runs of CJK ideographs and kana, then ASCII
// punctuation before ASCII letters, words with marks, punctuation and symbols (\p{P}, \p{S}), whitespace --
// under an empty normalizer Sequence: 355 texts give `tokenizers`' ids, pieces and text; a stretch that no
// alternative of the third matches (a zero-width space before a space) stays a piece of its own. The file's
// line breaks read as characters or as escapes; three other expressions are refused by name.
TEST(HfBpeTokenizer, DeepSeekV3SplitsMatchHuggingFaceTokenizers) {
  expect_oracle_agrees("deepseek_v3", false, 355);
  const std::string path = std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/deepseek_v3/tokenizer.json";
  const HfBpeTokenizer t(path);
  std::vector<std::string> pieces;
  for (std::string_view p : t.pre_tokenize(" \u200b\u200bz 12345\u4e2d\u6587abc")) pieces.emplace_back(p);
  EXPECT_EQ(pieces, (std::vector<std::string>{" ", "\u200b", "\u200bz", " ", "123", "45", "\u4e2d\u6587", "abc"}));
  const testing::ScratchDir scratch("spin_deepseek_splits");
  const fs::path& dir = scratch.path();
  std::ifstream in(path);
  nlohmann::json j = nlohmann::json::parse(in);
  std::string words = j["pre_tokenizer"]["pretokenizers"][2]["pattern"]["Regex"];
  ASSERT_NE(words.find("\r\n"), std::string::npos);  // the characters, as published
  for (std::size_t at; (at = words.find("\r\n")) != std::string::npos;) words.replace(at, 2, "\\r\\n");
  j["pre_tokenizer"]["pretokenizers"][2]["pattern"]["Regex"] = words;
  std::ofstream((dir / "tokenizer.json").string()) << j.dump();
  EXPECT_EQ(HfBpeTokenizer((dir / "tokenizer.json").string()).encode("a\r\n\r\nb 12345"), t.encode("a\r\n\r\nb 12345"));
  words.replace(words.find("\\p{M}"), 6, "");
  j["pre_tokenizer"]["pretokenizers"][2]["pattern"]["Regex"] = words;
  std::ofstream((dir / "tokenizer.json").string(), std::ios::trunc) << j.dump();
  const std::string e = testing::error_of([&] { HfBpeTokenizer bad((dir / "tokenizer.json").string()); });
  EXPECT_NE(e.find("are not DeepSeek-V3's, the one sequence of Splits spin knows"), std::string::npos) << e;
}

// DeepSeek LLM's pre-tokenizer (DeepSeek LLM's, V2's, V2.5's, V2-Lite's, Coder-V2's): five Isolated Splits -- each
// line break, words of its list of cased letters after an optional whitespace code point, runs of ASCII and fullwidth
// punctuation likewise, a piece's trailing whitespace, runs of U+0800-U+9FA5 and Hangul -- then every digit apart,
// each over the pieces of the one before: 355 texts (Greek, Cyrillic, the six letters NFC would change, scripts its
// lists leave out, fullwidth forms, the ideographic space, numbers of several scripts) give `tokenizers`' ids, pieces
// and text. The first expression's line breaks read as characters or as escapes; another letter list is refused.
TEST(HfBpeTokenizer, DeepSeekLlmSplitsMatchHuggingFaceTokenizers) {
  expect_oracle_agrees("deepseek_llm", false, 355);
  const std::string path = std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/deepseek_llm/tokenizer.json";
  const HfBpeTokenizer t(path);
  std::vector<std::string> pieces;
  for (std::string_view p : t.pre_tokenize("Hi \u03a9\u212a  x\u3000\uff21!\n12\u4e2d  ")) pieces.emplace_back(p);
  // The Kelvin sign is a letter of the second Split's, then a piece of its own: U+0800-U+4E00 is the fifth's.
  EXPECT_EQ(pieces, (std::vector<std::string>{"Hi", " \u03a9", "\u212a", " ", " x", "\u3000", "\uff21", "!", "\n", "1",
                                              "2", "\u4e2d", "  "}));
  const testing::ScratchDir scratch("spin_deepseek_llm_splits");
  const fs::path& dir = scratch.path();
  std::ifstream in(path);
  nlohmann::json j = nlohmann::json::parse(in);
  ASSERT_EQ(j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"], "[\r\n]");  // the characters, as published
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "[\\r\\n]";
  std::ofstream((dir / "tokenizer.json").string()) << j.dump();
  EXPECT_EQ(HfBpeTokenizer((dir / "tokenizer.json").string()).encode("a\r\n\r\nb 12345"), t.encode("a\r\n\r\nb 12345"));
  std::string letters = j["pre_tokenizer"]["pretokenizers"][1]["pattern"]["Regex"];
  letters.replace(letters.find("\u00b5"), 2, "");  // without MICRO SIGN
  j["pre_tokenizer"]["pretokenizers"][1]["pattern"]["Regex"] = letters;
  std::ofstream((dir / "tokenizer.json").string(), std::ios::trunc) << j.dump();
  const std::string e = testing::error_of([&] { HfBpeTokenizer bad((dir / "tokenizer.json").string()); });
  EXPECT_NE(e.find("are not DeepSeek LLM's, the one such sequence spin knows"), std::string::npos) << e;
}

// DeepSeek Coder's pre-tokenizer (deepseek-coder 1.3B / 6.7B / 33B): DeepSeek LLM's with \p{L} and \p{P} for its lists
// and no trailing-whitespace Split -- four Splits, then every digit apart: the same 355 texts give `tokenizers`' ids,
// pieces and text; another punctuation class is refused by name.
TEST(HfBpeTokenizer, DeepSeekCoderSplitsMatchHuggingFaceTokenizers) {
  expect_oracle_agrees("deepseek_coder", false, 355);
  const std::string path = std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/deepseek_coder/tokenizer.json";
  std::vector<std::string> pieces;
  for (std::string_view p : HfBpeTokenizer(path).pre_tokenize("def f(x):\n    return x+1  ")) pieces.emplace_back(p);
  EXPECT_EQ(pieces,
            (std::vector<std::string>{"def", " f", "(", "x", "):", "\n", "   ", " return", " x", "+", "1", "  "}));
  const testing::ScratchDir scratch("spin_deepseek_coder_splits");
  std::ifstream in(path);
  nlohmann::json j = nlohmann::json::parse(in);
  j["pre_tokenizer"]["pretokenizers"][2]["pattern"]["Regex"] = "\\s?\\p{S}+";
  const fs::path file = scratch.path() / "tokenizer.json";
  std::ofstream(file.string()) << j.dump();
  const std::string e = testing::error_of([&] { HfBpeTokenizer bad(file.string()); });
  EXPECT_NE(e.find("are not DeepSeek Coder's, the one such sequence spin knows"), std::string::npos) << e;
}

// o200k's expression (Phi-4-mini's, Llama 4's: words cut by case, contractions after them in any
// case, numbers of up to three digits) and added tokens that take the whitespace beside them
// (Phi-4-mini's chat tokens with rstrip, <|end|> with lstrip too): 351 texts -- the other
// expressions' edge cases, cased words with contractions, whitespace of several kinds before
// and after the tokens, the tokens back to back -- give `tokenizers`' ids, pieces and text.
TEST(HfBpeTokenizer, O200kStyleWithStrippingAddedTokensMatchesHuggingFaceTokenizers) {
  expect_oracle_agrees("o200k", false, 351, 200);  // a third of its texts have added tokens
  const HfBpeTokenizer t(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/o200k/tokenizer.json");
  EXPECT_TRUE(t.added_token_strip(*t.token_id("<|end|>")).left);
  EXPECT_TRUE(t.added_token_strip(*t.token_id("<|user|>")).right);
  EXPECT_FALSE(t.added_token_strip(*t.token_id("<|user|>")).left);
  EXPECT_FALSE(t.added_token_strip(*t.token_id("hello")).right);  // not an added token
  // The whitespace taken is Unicode's (U+3000, U+00A0), and stops at the previous token.
  EXPECT_EQ(t.encode("a \u3000<|end|>\u00a0 b"), (std::vector<std::int32_t>{*t.token_id("a"), 4, *t.token_id("b")}));
  EXPECT_EQ(t.encode("<|user|>  <|end|>"), (std::vector<std::int32_t>{2, 4}));
}

// (?i:'s|...) folds case as Oniguruma (tokenizers) and fancy-regex (tiktoken) do, by Unicode's simple case folding:
// LATIN SMALL LETTER LONG S (U+017F) is an s there -- the one code point besides ASCII's that folds to a
// contraction's letter --, so "'\u017f" is a contraction and the letters after it a word of their own. The pieces are
// `tokenizers`' for these texts (Llama 3's expression; o200k's, whose contraction follows a word).
TEST(HfBpeTokenizer, ContractionsFoldCaseAsUnicodeDoes) {
  const auto pieces = [](const std::string& fixture, const std::string& text) {
    const HfBpeTokenizer t(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/" + fixture + "/tokenizer.json");
    std::vector<std::string> got;
    for (std::string_view p : t.pre_tokenize(text)) got.emplace_back(p);
    return got;
  };
  using Pieces = std::vector<std::string>;
  EXPECT_EQ(pieces("llama3", "Don'\u017ft go"), (Pieces{"Don", "'\u017f", "t", " go"}));
  EXPECT_EQ(pieces("llama3", "\u017f'\u017f\u017f"), (Pieces{"\u017f", "'\u017f", "\u017f"}));
  EXPECT_EQ(pieces("llama3", "I'LL"), (Pieces{"I", "'LL"}));
  EXPECT_EQ(pieces("o200k", "Don'\u017ft go"), (Pieces{"Don'\u017f", "t", " go"}));
  EXPECT_EQ(pieces("o200k", "A'\u017fB"), (Pieces{"A'\u017f", "B"}));
  EXPECT_EQ(pieces("gpt2", "x'\u017ft"), (Pieces{"x", "'", "\u017ft"}));  // GPT-2's contractions are lower case only
}

TEST(HfBpeTokenizer, SpecialTokensAndLoadingFromAModelDirectory) {
  const auto t = Tokenizer::load(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/llama3");
  const auto& bpe = dynamic_cast<const HfBpeTokenizer&>(*t);
  ASSERT_TRUE(t->bos_id() && t->eos_id());
  EXPECT_EQ(*t->bos_id(), *bpe.token_id("<|begin_of_text|>"));
  EXPECT_EQ(*t->eos_id(), *bpe.token_id("<|eot_id|>"));
  EXPECT_EQ(t->vocab_size(), 1200);
  // Specials are recognised in the text, left out of decoded text.
  const std::vector<std::int32_t> ids = t->encode("hi<|eot_id|>");
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.back(), *t->eos_id());
  EXPECT_EQ(t->decode(ids), "hi");
  // Every byte string survives the round trip, valid UTF-8 or not.
  const std::string bytes = "a\xff\xfe b\xc3";
  EXPECT_EQ(t->decode(t->encode(bytes)), bytes);
}

// A refusing test's check: `good` (a fixture's file) changed by `change`, written to `path`, is
// refused with an error naming the file and saying `what`.
using JsonChange = std::function<void(nlohmann::json&)>;
void expect_refused(const fs::path& path, const nlohmann::json& good, const JsonChange& change, const std::string& what) {
  nlohmann::json j = good;
  change(j);
  std::ofstream(path) << j.dump();
  const std::string e = testing::error_of([&] { HfBpeTokenizer t(path.string()); });
  EXPECT_NE(e.find(path.string()), std::string::npos) << e;
  EXPECT_NE(e.find(what), std::string::npos) << e;
}

TEST(HfBpeTokenizer, UnsupportedFilesAreRefusedByName) {
  const testing::ScratchDir scratch("spin_hf_bpe_test");
  const fs::path& dir = scratch.path();
  std::ifstream in(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/llama3/tokenizer.json");
  const nlohmann::json good = nlohmann::json::parse(in);
  const auto refused = [&](const JsonChange& change, const std::string& what) {
    expect_refused(dir / "tokenizer.json", good, change, what);
  };
  refused([](nlohmann::json& j) { j["normalizer"] = {{"type", "NFKC"}}; }, "normalizer NFKC is not supported (NFC is)");
  refused(
      [](nlohmann::json& j) {
        j["normalizer"] = {{"type", "NFC"}};
        j["added_tokens"][0]["normalized"] = true;
        j["added_tokens"][0]["content"] = "e\u0301";  // NFC makes it U+00E9
      },
      "is normalized and NFC changes it, which spin does not support");
  refused([](nlohmann::json& j) { j["model"]["type"] = "WordPiece"; }, "model type WordPiece");
  refused([](nlohmann::json& j) { j["model"]["byte_fallback"] = true; }, "byte_fallback");
  refused([](nlohmann::json& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\p{N}"; },
          "expression \\p{N} is not one spin knows");
  refused([](nlohmann::json& j) { j["pre_tokenizer"] = {{"type", "Metaspace"}}; }, "pre-tokenizer Metaspace");
  refused([](nlohmann::json& j) { j["added_tokens"][0]["single_word"] = true; }, "sets single_word");
  refused([](nlohmann::json& j) { j["model"]["merges"][0] = "nosuchtoken x"; }, "outside the vocabulary");
  // Ids read whole and bounded: 10^12 read as 32 bits was reported as "the negative id -727379968", and a large
  // valid id sized tables a slot an id.
  refused([](nlohmann::json& j) { j["model"]["vocab"]["!"] = 1'000'000'000'000LL; },
          "token \"!\" has the id 1000000000000, outside [0, 16777216)");
  refused([](nlohmann::json& j) { j["added_tokens"][0]["id"] = -1; }, "has the id -1, outside [0, 16777216)");
}

// Mistral's Tekken (tests/data/tekken, make_tekken_fixture.py: Mistral NeMo's tekken_240718.json
// cut to 4000 ranks behind its 1000 special tokens) against mistral-common's Tekkenizer
// (tiktoken): 564 texts -- the other expressions' edge cases and random strings, and Tekken's own
// (case changes inside words, title-case, modifier and caseless letters, combining marks, "/"
// after punctuation, digits one by one, special tokens' text) -- give the same ids, pieces and
// decoded text. SPIN_TEKKEN_FIXTURE names another folder made by the script (--ranks 130072: the
// whole vocabulary, for a check by hand).
TEST(TekkenTokenizer, MatchesMistralCommon) {
  const char* other = std::getenv("SPIN_TEKKEN_FIXTURE");
  const std::string dir = other ? other : std::string(SPIN_TEST_DATA_DIR) + "/tekken";
  const HfBpeTokenizer t(dir + "/tekken.json");
  std::ifstream in(dir + "/cases.json");
  int checked = 0;
  for (const nlohmann::json& c : nlohmann::json::parse(in)) {
    expect_reference_case(t, c);
    ++checked;
  }
  EXPECT_EQ(checked, 564);
}

// The same vocabulary as Hugging Face's converted tokenizer.json (Split by Tekken's expression,
// every two-token split a merge, ignore_merges) gives the same ids -- except that `tokenizers`
// reads a special token's text as the token, tekken.json (as mistral-common) never does; which is
// why a model folder's tekken.json is read before its tokenizer.json.
TEST(TekkenTokenizer, ConvertedTokenizerJsonAgreesAndSpecialTokensAreNotReadInText) {
  const std::string dir = std::string(SPIN_TEST_DATA_DIR) + "/tekken";
  const HfBpeTokenizer tekken(dir + "/tekken.json"), converted(dir + "/tokenizer.json");
  std::ifstream in(dir + "/cases.json");
  int same = 0;
  for (const nlohmann::json& c : nlohmann::json::parse(in)) {
    const std::string text = c.at("text");
    if (text.find('[') != std::string::npos || text.find('<') != std::string::npos) continue;
    EXPECT_EQ(converted.encode(text), c.at("ids").get<std::vector<std::int32_t>>()) << printable(text);
    ++same;
  }
  EXPECT_GT(same, 400);
  const std::vector<std::int32_t> read = converted.encode("[INST]hi[/INST]"), as_text = tekken.encode("[INST]hi[/INST]");
  std::vector<std::int32_t> hi = {3};
  for (std::int32_t id : tekken.encode("hi")) hi.push_back(id);
  hi.push_back(4);
  EXPECT_EQ(read, hi);
  EXPECT_GT(as_text.size(), 3u);
  EXPECT_TRUE(std::none_of(as_text.begin(), as_text.end(), [](std::int32_t id) { return id < 1000; }));
  EXPECT_EQ(tekken.decode(as_text), "[INST]hi[/INST]");
  // The special tokens: ids 0-19 by mistral-common's list, then <SPECIAL_i>; ranks from 1000.
  const auto t = Tokenizer::load(dir);  // tekken.json, though a tokenizer.json is beside it
  EXPECT_EQ(t->encode("[INST]"), tekken.encode("[INST]"));
  EXPECT_NE(t->encode("[INST]"), std::vector<std::int32_t>{3});
  EXPECT_EQ(t->bos_id(), 1);
  EXPECT_EQ(t->eos_id(), 2);
  EXPECT_EQ(t->vocab_size(), 5000);
  EXPECT_EQ(t->mistral_version(), "v3");
  EXPECT_EQ(t->token_id("[INST]"), 3);
  EXPECT_EQ(t->token_id("[SYSTEM_PROMPT]"), 17);
  EXPECT_EQ(t->token_id("[TOOL_CONTENT]"), 19);
  EXPECT_EQ(t->token_id("<SPECIAL_20>"), 20);
  EXPECT_EQ(t->token_id("<SPECIAL_999>"), 999);
  EXPECT_EQ(t->special_text(3), "[INST]");
  const std::vector<std::int32_t> with_specials = {1, 3, 1000 + 'h', 4, 2};
  EXPECT_EQ(t->decode(with_specials), "h");
  EXPECT_EQ(decode_showing_specials(*t, with_specials), "<s>[INST]h[/INST]</s>");
}

TEST(TekkenTokenizer, MalformedFilesAreRefusedByName) {
  const testing::ScratchDir scratch("spin_tekken_refused_test");
  const fs::path& dir = scratch.path();
  std::ifstream in(std::string(SPIN_TEST_DATA_DIR) + "/tekken/tekken.json");
  const nlohmann::json good = nlohmann::json::parse(in);
  const auto refused = [&](const JsonChange& change, const std::string& what) {
    expect_refused(dir / "tekken.json", good, change, what);
  };
  refused([](nlohmann::json& j) { j["config"]["pattern"] = "\\p{L}+"; }, "is not Tekken's");
  refused([](nlohmann::json& j) { j["config"]["default_vocab_size"] = 9000; }, "do not fit a vocabulary of 4000 ranks");
  refused([](nlohmann::json& j) { j["vocab"][7]["rank"] = 8; }, "vocab entry 7 has rank 8");
  refused([](nlohmann::json& j) { j["vocab"][300]["token_bytes"] = "a*b="; }, "is not base64");
  refused([](nlohmann::json& j) { j["vocab"][300]["token_bytes"] = j["vocab"][299]["token_bytes"]; },
          "the token of rank 300 is empty or repeats an earlier one");
  refused([](nlohmann::json& j) { j["special_tokens"] = {{{"rank", 1000}, {"token_str", "<s>"}}}; },
          "has a rank outside [0, 1000)");
  refused([](nlohmann::json& j) { j["special_tokens"] = {{{"rank", 5}, {"token_str", "[INST]"}}}; },
          "lack <s> or </s>");
  refused([](nlohmann::json& j) { j["config"].erase("default_num_special_tokens"); },
          "not a tokenizer.json or tekken.json");
}

TEST(UnicodeClasses, LettersNumbersAndWhitespaceAsTheRegularExpressionsClassThem) {
  for (char32_t c : {U'a', U'Z', U'é', U'ж', U'ש', U'م', U'日', U'ᄀ', U'ǅ', U'ʰ'}) EXPECT_TRUE(unicode::is_letter(c));
  for (char32_t c : {U'0', U'٣', U'Ⅻ', U'½', U'²'}) EXPECT_TRUE(unicode::is_number(c));
  for (char32_t c : {U' ', U'\t', U'\n', U'\r', U'\u00a0', U'\u3000', U'\u2003', U'\u2028'}) {
    EXPECT_TRUE(unicode::is_whitespace(c));
  }
  for (char32_t c : {U'_', U'-', U'🙂', U'\u200b', U'\u0301', U'€'}) {
    EXPECT_FALSE(unicode::is_letter(c) || unicode::is_number(c) || unicode::is_whitespace(c));
  }
  // Tekken's: Lu and Lt upper case, Ll lower, the rest of the letters neither; marks.
  for (char32_t c : {U'A', U'É', U'Ω', U'ǅ', U'ᾈ'}) EXPECT_TRUE(unicode::is_uppercase(c) && !unicode::is_lowercase(c));
  for (char32_t c : {U'a', U'ß', U'ω', U'ǆ'}) EXPECT_TRUE(unicode::is_lowercase(c) && !unicode::is_uppercase(c));
  for (char32_t c : {U'ʰ', U'日', U'ー', U'1'}) EXPECT_FALSE(unicode::is_uppercase(c) || unicode::is_lowercase(c));
  for (char32_t c : {U'\u0301', U'\u093f', U'\u20dd'}) EXPECT_TRUE(unicode::is_mark(c));
  for (char32_t c : {U'a', U'_', U'ʰ'}) EXPECT_FALSE(unicode::is_mark(c));
  // DeepSeek-V3's: \p{P} (Pc Pd Ps Pe Pi Pf Po) and \p{S} (Sm Sc Sk So), apart from each other and the rest.
  for (char32_t c : {U'_', U'-', U'(', U')', U'«', U'»', U'!', U'¿', U'—', U'…', U'\u3001', U'\uff01'}) {
    EXPECT_TRUE(unicode::is_punctuation(c) && !unicode::is_symbol(c)) << static_cast<std::uint32_t>(c);
  }
  for (char32_t c : {U'$', U'+', U'^', U'`', U'|', U'€', U'°', U'±', U'™', U'🙂'}) {
    EXPECT_TRUE(unicode::is_symbol(c) && !unicode::is_punctuation(c)) << static_cast<std::uint32_t>(c);
  }
  for (char32_t c : {U'a', U'1', U' ', U'\u0301', U'\u200b', U'\u0007', U'日'}) {
    EXPECT_FALSE(unicode::is_punctuation(c) || unicode::is_symbol(c)) << static_cast<std::uint32_t>(c);
  }
  // ASCII (answered without the tables): Python's unicodedata's P* and S* code points of it, exactly.
  const std::u32string punctuation = U"!\"#%&'()*,-./:;?@[\\]_{}", symbols = U"$+<=>^`|~";
  for (char32_t c = 0; c < 0x80; ++c) {
    EXPECT_EQ(unicode::is_punctuation(c), punctuation.find(c) != std::u32string::npos) << static_cast<std::uint32_t>(c);
    EXPECT_EQ(unicode::is_symbol(c), symbols.find(c) != std::u32string::npos) << static_cast<std::uint32_t>(c);
  }
  const unicode::CodePoints s = unicode::decode_utf8("a\xc3\xa9\xff🙂");
  EXPECT_EQ(s.cp, (std::vector<char32_t>{U'a', U'é', 0xFFFFFFFF, U'🙂'}));
  EXPECT_EQ(s.at, (std::vector<std::size_t>{0, 1, 3, 4, 8}));
}

// NFC against Python's unicodedata (tests/data/make_nfc_cases.py; 561 strings: every canonical
// decomposition composed and decomposed, primary composites, Hangul jamo, random runs of marks).
TEST(UnicodeNfc, MatchesPythonsUnicodedata) {
  std::ifstream in(std::string(SPIN_TEST_DATA_DIR) + "/unicode/nfc_cases.json");
  const nlohmann::json fixture = nlohmann::json::parse(in);
  int changed = 0;
  for (const nlohmann::json& c : fixture.at("cases")) {
    const std::string text = c.at(0), want = c.at(1);
    EXPECT_EQ(unicode::nfc(text), want) << printable(text);
    changed += text != want;
  }
  EXPECT_GT(changed, 200);
  EXPECT_EQ(unicode::nfc("e\xcc\x81\xff"), "\xc3\xa9\xff") << "an invalid byte passes through";
}

}  // namespace
}  // namespace spin::data
