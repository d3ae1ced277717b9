#include "data/tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/scratch_dir.h"
#include "core/error.h"
#include "data/examples.h"
#include "data/prompt_template.h"

namespace spin::data {
namespace {

namespace fs = std::filesystem;

TEST(ByteTokenizer, IdsAreBytesPlusTheOffsetAndRoundTrip) {
  const ByteTokenizer t;
  EXPECT_EQ(t.encode("Az\n"), (std::vector<std::int32_t>{65 + 3, 122 + 3, 10 + 3}));
  EXPECT_EQ(t.vocab_size(), 259);
  EXPECT_EQ(*t.bos_id(), 1);
  EXPECT_EQ(*t.eos_id(), 2);
  const std::string text = "wörld 123 ✓";
  EXPECT_EQ(t.encode(text).size(), text.size());  // bytes, not characters
  std::vector<std::int32_t> ids = t.encode(text);
  ids.insert(ids.begin(), 1);
  ids.push_back(2);
  EXPECT_EQ(t.decode(ids), text) << "specials are left out";
}

TEST(ByteTokenizer, LoadsFromAModelDirectory) {
  const testing::ScratchDir scratch("spin_tok");
  const fs::path dir = scratch / "model";
  fs::create_directories(dir);
  ByteTokenizer(4, 0, 3).save(dir.string());
  const auto t = Tokenizer::load(dir.string());
  EXPECT_EQ(t->encode("a"), (std::vector<std::int32_t>{97 + 4}));
  EXPECT_EQ(*t->eos_id(), 3);
  fs::remove_all(dir);
  EXPECT_THROW(Tokenizer::load(dir.string()), Error);
}

TEST(Printable, EscapesControlCharactersAndInvalidUtf8) {
  EXPECT_EQ(printable("wörld ✓"), "wörld ✓");
  EXPECT_EQ(printable("a\nb\tc\x01"), "a\\nb\\tc\\x01");
  EXPECT_EQ(printable("x\xc3"), "x\\xc3") << "a cut two-byte sequence";
  EXPECT_EQ(printable("\xff\xe2\x9c"), "\\xff\\xe2\\x9c");
}

// Known ids: the committed tokenizer.model (BPE, 400 pieces, trained by Debian's spm_train on
// a synthetic corpus) encoded by the sentencepiece Python package 0.2.3, independently of spin.
TEST(SentencePieceTokenizer, MatchesThePythonPackagesIds) {
  const auto t = Tokenizer::load(SPIN_TEST_DATA_DIR "/tiny_spm");
  EXPECT_EQ(t->vocab_size(), 400);
  EXPECT_EQ(*t->bos_id(), 1);
  EXPECT_EQ(*t->eos_id(), 2);
  EXPECT_EQ(t->encode("the quick brown fox"), (std::vector<std::int32_t>{332, 301, 316, 320}));
  EXPECT_EQ(t->encode("add 12+34="), (std::vector<std::int32_t>{285, 348, 389, 46, 383, 386, 64}));
  EXPECT_EQ(t->encode("Hello, wörld! 123"),
            (std::vector<std::int32_t>{363, 75, 364, 375, 375, 366, 47, 363, 396, 198, 185, 365,
                                       375, 371, 36, 348, 389, 383}));
  std::vector<std::int32_t> ids = t->encode("Hello, wörld! 123");
  ids.insert(ids.begin(), 1);
  ids.push_back(2);
  EXPECT_EQ(t->decode(ids), "Hello, wörld! 123");
}

// Tokens added past the SentencePiece model's pieces (Phi-3's chat tokens, 32000-32010 over its
// 32000 pieces) from added_tokens.json or tokenizer_config.json's added_tokens_decoder: known by text, shown as specials, left
// out by decode() -- and `auto` refuses Phi-3's chat format by name instead of writing its
// markers as text (chat, Zephyr's, would).
TEST(SentencePieceTokenizer, KnowsTokensAddedPastItsPieces) {
  const testing::ScratchDir scratch("spin_spm_added");
  const fs::path& dir = scratch.path();
  fs::copy_file(SPIN_TEST_DATA_DIR "/tiny_spm/tokenizer.model", dir / "tokenizer.model");
  std::ofstream(dir / "added_tokens.json") << R"({"<unk>": 0, "<|end|>": 407, "<|user|>": 410, "<|assistant|>": 401})";
  const auto t = Tokenizer::load(dir.string());
  EXPECT_EQ(t->vocab_size(), 411);
  EXPECT_EQ(t->token_id("<|user|>"), 410);
  EXPECT_EQ(t->token_id("<unk>"), 0);  // a piece of the model: its own id
  EXPECT_EQ(t->special_text(407), "<|end|>");
  EXPECT_EQ(t->special_text(405), std::nullopt);
  std::vector<std::int32_t> ids = {410};
  const auto hello = t->encode("Hello");
  ids.insert(ids.end(), hello.begin(), hello.end());
  ids.push_back(407);
  EXPECT_EQ(t->decode(ids), "Hello");
  EXPECT_EQ(decode_showing_specials(*t, ids), "<|user|>Hello<|end|>");
  try {
    choose_prompt_template("auto", t.get());
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Phi-3's chat tokens"), std::string::npos) << e.what();
  }
  EXPECT_EQ(choose_prompt_template("plain", t.get()), PromptTemplate::Plain);
  // From tokenizer_config.json's added_tokens_decoder when there is no added_tokens.json; a
  // malformed entry is an error naming the file.
  fs::remove(dir / "added_tokens.json");
  std::ofstream(dir / "tokenizer_config.json")
      << R"({"added_tokens_decoder": {"1": {"content": "<s>"}, "400": {"content": "<|x|>", "special": true}}})";
  EXPECT_EQ(Tokenizer::load(dir.string())->token_id("<|x|>"), 400);
  EXPECT_EQ(Tokenizer::load(dir.string())->vocab_size(), 401);
  std::ofstream(dir / "tokenizer_config.json") << R"({"added_tokens_decoder": {"x": {"content": "<|x|>"}}})";
  try {
    Tokenizer::load(dir.string());
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer_config.json"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace spin::data

namespace spin::data {
namespace {

// Every kind of tokenizer is safe to share between data loading's workers: the examples of a
// chat data set tokenized on 4 threads are those of one (jobs/local/race_check.sh runs this under
// ThreadSanitizer, which reports any unsynchronised state a tokenizer keeps, cache or otherwise).
TEST(Tokenizers, WorkersTokenizeAsOneThreadDoes) {
  const std::string data = SPIN_TEST_DATA_DIR "/parquet/ultrachat.parquet";
  for (const char* dir : {"hf_bpe/llama3", "hf_bpe/qwen2", "hf_bpe/gpt_neox", "hf_bpe/deepseek_v3", "hf_bpe/granite",
                          "tekken", "kimi", "tiny_spm", "llama_spm"}) {
    SCOPED_TRACE(dir);
    const auto t = Tokenizer::load(std::string(SPIN_TEST_DATA_DIR) + "/" + dir);
    const auto load = [&](int workers) {
      return load_examples(data, t.get(), PromptTemplate::Chat, {}, t->vocab_size(), {.workers = workers, .columns = {}});
    };
    const LoadedExamples one = load(1), four = load(4);
    ASSERT_EQ(four.examples.size(), one.examples.size());
    ASSERT_EQ(one.examples.size(), 40u);
    for (std::size_t i = 0; i < one.examples.size(); ++i) {
      EXPECT_EQ(four.examples[i].prompt, one.examples[i].prompt);
      EXPECT_EQ(four.examples[i].response, one.examples[i].response);
    }
  }
}

}  // namespace
}  // namespace spin::data
