// Byte-level BPE tokenizer.json files against Hugging Face `tokenizers` (the oracle that made
// tests/data/hf_bpe: make_hf_bpe_fixtures.py): for a Llama-3-style, a GPT-2-style and a
// Qwen2-style tokenizer (NFC normalizer; its texts add what NFC changes), 340-348 texts each (edge cases of the expressions and random strings of letters, digits, scripts,
// whitespace kinds, punctuation, emoji, special tokens) give the same pre-tokenizer pieces, the
// same ids and the same decoded text; specials come from tokenizer_config.json; unsupported
// files are refused by name.
#include "data/hf_bpe_tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "data/prompt_template.h"
#include "data/unicode_classes.h"

namespace spin::data {
namespace {

namespace fs = std::filesystem;

nlohmann::json cases(const std::string& kind) {
  std::ifstream in(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/" + kind + "/cases.json");
  return nlohmann::json::parse(in);
}

void expect_oracle_agrees(const std::string& kind, bool prefix_space, int cases_expected = 340) {
  const HfBpeTokenizer t(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/" + kind + "/tokenizer.json");
  int checked = 0, pieces_checked = 0;
  for (const nlohmann::json& c : cases(kind)) {
    const std::string text = c.at("text");
    SCOPED_TRACE(kind + ": " + printable(text));
    EXPECT_EQ(t.encode(text), c.at("ids").get<std::vector<std::int32_t>>());
    EXPECT_EQ(t.decode(c.at("ids").get<std::vector<std::int32_t>>()), c.at("decoded").get<std::string>());
    if (!c.at("pieces").is_null()) {
      std::string input = prefix_space && !text.empty() && text.front() != ' ' ? " " + text : text;
      if (kind == "qwen2") input = unicode::nfc(input);  // the pieces are those of the normalized text
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
  EXPECT_GT(pieces_checked, 300);
}

TEST(HfBpeTokenizer, Llama3StyleMatchesHuggingFaceTokenizers) { expect_oracle_agrees("llama3", false); }

TEST(HfBpeTokenizer, Gpt2StyleWithPrefixSpaceMatchesHuggingFaceTokenizers) { expect_oracle_agrees("gpt2", true); }

TEST(HfBpeTokenizer, Qwen2StyleWithNfcMatchesHuggingFaceTokenizers) { expect_oracle_agrees("qwen2", false, 348); }

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

// A template against transformers' apply_chat_template (tests/data/<dir>/chat_cases.json): the
// prompt (with the generation prompt) and the response's ids; `separator` is what the oracle's
// whole conversation has after the response's end token (chatml's "\n" between turns).
void expect_chat_cases(const std::string& dir, PromptTemplate p, const std::string& separator,
                       const std::string& file = "chat_cases.json") {
  const auto t = Tokenizer::load(std::string(SPIN_TEST_DATA_DIR) + "/" + dir);
  std::ifstream in(std::string(SPIN_TEST_DATA_DIR) + "/" + dir + "/" + file);
  ASSERT_TRUE(in.good()) << dir << "/" << file;
  int checked = 0;
  for (const nlohmann::json& c : nlohmann::json::parse(in)) {
    std::vector<Message> messages;
    for (const nlohmann::json& m : c.at("messages")) messages.push_back({m.at("role"), m.at("content")});
    const Message response = messages.back();
    messages.pop_back();
    EXPECT_EQ(render_prompt(messages, p, *t), c.at("prompt_ids").get<std::vector<std::int32_t>>());
    std::vector<std::int32_t> ids = render_response(response.content, p, *t);
    const std::vector<std::int32_t> after = t->encode(separator);
    ids.insert(ids.end(), after.begin(), after.end());
    EXPECT_EQ(ids, c.at("response_ids").get<std::vector<std::int32_t>>());
    ++checked;
  }
  EXPECT_GE(checked, 3);
}

// The llama3 template with Llama-3-Instruct's Jinja template: contents trimmed, the response
// ending with <|eot_id|>.
TEST(HfBpeTokenizer, Llama3TemplateMatchesApplyChatTemplate) {
  expect_chat_cases("hf_bpe/llama3", PromptTemplate::Llama3, "");
  // llama3.1: Llama 3.1 / 3.2 Instruct's template, its system block (knowledge cutoff, date) always.
  expect_chat_cases("hf_bpe/llama31", PromptTemplate::Llama31, "");
  const auto t = Tokenizer::load(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/llama3");
  EXPECT_EQ(response_end(PromptTemplate::Llama3, *t), t->token_id("<|eot_id|>"));
  // A tokenizer without Llama-3's special tokens cannot use the template.
  const ByteTokenizer bytes;
  const std::string e = testing::error_of([&] { render_prompt({{"user", "hi"}}, PromptTemplate::Llama3, bytes); });
  EXPECT_NE(e.find("the llama3 prompt template needs the token <|start_header_id|>"), std::string::npos) << e;
}

// The chatml template with ChatML's Jinja template (Qwen2.5-Instruct's for conversations with a
// system message): no BOS, the response ending with <|im_end|>.
TEST(HfBpeTokenizer, ChatMlTemplateMatchesApplyChatTemplate) {
  expect_chat_cases("hf_bpe/qwen2", PromptTemplate::ChatMl, "\n");
  // qwen2.5: Qwen2.5-Instruct's template, its default system message where a conversation has none.
  expect_chat_cases("hf_bpe/qwen2", PromptTemplate::Qwen25, "\n", "chat_cases_qwen2.5.json");
  // qwen3: Qwen3's template with enable_thinking=False, the empty think block after the
  // generation prompt (<think> and </think> added tokens of its tokenizer).
  expect_chat_cases("hf_bpe/qwen3", PromptTemplate::Qwen3, "\n");
  // phi4: Phi-4's template (its tokenizer's <|im_sep|> between role and content, the assistant's
  // header after every user turn, no newlines, no BOS though its tokenizer names one), the
  // response ending with <|im_end|>.
  expect_chat_cases("hf_bpe/phi4", PromptTemplate::Phi4, "");
  const auto t = Tokenizer::load(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/qwen2");
  EXPECT_FALSE(t->bos_id().has_value());
  EXPECT_EQ(t->eos_id(), t->token_id("<|im_end|>"));
  // config.json's ids (Qwen2.5's names <|endoftext|> as BOS): EOS taken, no BOS added.
  t->set_special_ids(*t->token_id("<|endoftext|>"), *t->token_id("<|im_start|>"));
  EXPECT_FALSE(t->bos_id().has_value());
  EXPECT_EQ(t->eos_id(), t->token_id("<|im_start|>"));
  EXPECT_EQ(response_end(PromptTemplate::ChatMl, *t), t->token_id("<|im_end|>"));
  const ByteTokenizer bytes;
  const std::string e = testing::error_of([&] { render_prompt({{"user", "hi"}}, PromptTemplate::ChatMl, bytes); });
  EXPECT_NE(e.find("the chatml prompt template needs the token <|im_start|>"), std::string::npos) << e;
}

// The gemma template with Gemma Instruct's Jinja template, on a SentencePiece model in Gemma's
// layout (tests/data/gemma_spm: <start_of_turn> and <end_of_turn> user-defined pieces, no dummy
// prefix, newlines kept): BOS, the assistant's turns as "model", contents trimmed, the response
// ending with <end_of_turn>; auto picks it by those tokens. A system message, or roles that do not
// alternate, are refused as Gemma's template refuses them.
// What the gemma and gemma3 templates share: the fixture `dir`'s cases against apply_chat_template,
// auto's choice for its tokenizer, the template's name and <end_of_turn> ending a response.
// Returns the tokenizer.
auto expect_gemma_template(const std::string& dir, PromptTemplate p, const char* name) {
  expect_chat_cases(dir, p, "\n");
  auto t = Tokenizer::load(std::string(SPIN_TEST_DATA_DIR) + "/" + dir);
  EXPECT_EQ(choose_prompt_template("auto", t.get()), p);
  EXPECT_EQ(choose_prompt_template(name, nullptr), p);
  EXPECT_EQ(response_end(p, *t), t->token_id("<end_of_turn>"));
  return t;
}

TEST(PromptTemplates, GemmaTemplateMatchesApplyChatTemplate) {
  const auto t = expect_gemma_template("gemma_spm", PromptTemplate::Gemma, "gemma");
  const std::string system = testing::error_of(
      [&] { render_prompt({{"system", "be brief"}, {"user", "hi"}}, PromptTemplate::Gemma, *t); });
  EXPECT_NE(system.find("the gemma prompt template has no system role"), std::string::npos) << system;
  const std::string order = testing::error_of(
      [&] { render_prompt({{"user", "hi"}, {"user", "again"}}, PromptTemplate::Gemma, *t); });
  EXPECT_NE(order.find("message 2 is user"), std::string::npos) << order;
  const ByteTokenizer bytes;
  const std::string e = testing::error_of([&] { render_prompt({{"user", "hi"}}, PromptTemplate::Gemma, bytes); });
  EXPECT_NE(e.find("the gemma prompt template needs the token <start_of_turn>"), std::string::npos) << e;
}

// gemma3 with google/gemma-3-1b-it's Jinja template (tests/data/gemma3_spm: the same layout with
// Gemma 3's <start_of_image> piece): gemma's turns, and a system message written as given, then
// a blank line, before the first user message's trimmed text (a conversation of two turns with
// one); auto picks it by <start_of_image>.
TEST(PromptTemplates, Gemma3TemplateMatchesApplyChatTemplate) {
  const auto t = expect_gemma_template("gemma3_spm", PromptTemplate::Gemma3, "gemma3");
  const std::string order = testing::error_of(
      [&] { render_prompt({{"system", "s"}, {"assistant", "hi"}}, PromptTemplate::Gemma3, *t); });
  EXPECT_NE(order.find("message 2 is assistant"), std::string::npos) << order;
}

// Llama 2 chat and Mistral 7B Instruct v0.1 / v0.2 on a SentencePiece model in their layout
// (tests/data/llama_spm: a dummy prefix, byte fallback; make_llama_spm_fixture.py): llama2 against
// transformers' Llama-2-chat template (BOS per user turn, "[INST] ... [/INST]", " answer " EOS,
// the system message in <<SYS>>), mistral against mistral-common's v1 instruct tokenizer (one
// BOS, each turn encoded on its own, the system message before the first user's text). Neither
// is chosen by auto; roles must alternate after an optional system message. Mistral v0.3's
// format (tests/data/mistral_v3_spm: [INST] and [/INST] control tokens) against mistral-common's
// v3 tokenizer (the markers as tokens, the system message before the LAST user's text, the
// answer's trailing spaces removed); auto picks it by those tokens.
TEST(PromptTemplates, Llama2AndMistralTemplatesMatchTheirReferences) {
  expect_chat_cases("llama_spm", PromptTemplate::Llama2, "", "chat_cases_llama2.json");
  expect_chat_cases("llama_spm", PromptTemplate::Mistral, "", "chat_cases_mistral.json");
  expect_chat_cases("mistral_v3_spm", PromptTemplate::MistralV3, "");
  const auto v3 = Tokenizer::load(std::string(SPIN_TEST_DATA_DIR) + "/mistral_v3_spm");
  EXPECT_EQ(choose_prompt_template("auto", v3.get()), PromptTemplate::MistralV3);
  EXPECT_EQ(choose_prompt_template("mistral-v3", nullptr), PromptTemplate::MistralV3);
  const auto t = Tokenizer::load(std::string(SPIN_TEST_DATA_DIR) + "/llama_spm");
  EXPECT_EQ(choose_prompt_template("auto", t.get()), PromptTemplate::Chat);
  EXPECT_EQ(choose_prompt_template("llama2", nullptr), PromptTemplate::Llama2);
  EXPECT_EQ(choose_prompt_template("mistral", nullptr), PromptTemplate::Mistral);
  EXPECT_EQ(response_end(PromptTemplate::Mistral, *t), t->eos_id());
  for (const PromptTemplate p : {PromptTemplate::Llama2, PromptTemplate::Mistral, PromptTemplate::MistralV3}) {
    const std::string e = testing::error_of(
        [&] { render_prompt({{"user", "a"}, {"user", "b"}}, p, *t); });
    EXPECT_NE(e.find(cat("the ", prompt_template_name(p), " prompt template needs the roles to alternate")),
              std::string::npos)
        << e;
    const std::string late_system = testing::error_of(
        [&] { render_prompt({{"user", "a"}, {"system", "b"}}, p, *t); });
    EXPECT_NE(late_system.find("message 2 is system"), std::string::npos) << late_system;
  }
}

// The default template, auto: by the tokenizer's chat tokens (and for Qwen2.5, its chat template's
// default system message), chat otherwise.
TEST(HfBpeTokenizer, AutoTemplateFollowsTheTokenizersChatTokens) {
  const auto t = Tokenizer::load(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/llama3");
  const ByteTokenizer bytes;
  EXPECT_EQ(choose_prompt_template("auto", t.get()), PromptTemplate::Llama3);
  EXPECT_EQ(choose_prompt_template("auto", &bytes), PromptTemplate::Chat);
  EXPECT_EQ(choose_prompt_template("auto", nullptr), PromptTemplate::Chat);
  EXPECT_EQ(choose_prompt_template("chat", t.get()), PromptTemplate::Chat);  // as asked
  const auto qwen = Tokenizer::load(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/qwen2");
  EXPECT_EQ(choose_prompt_template("auto", qwen.get()), PromptTemplate::ChatMl);
  EXPECT_EQ(choose_prompt_template("chatml", nullptr), PromptTemplate::ChatMl);
  EXPECT_EQ(choose_prompt_template("qwen2.5", nullptr), PromptTemplate::Qwen25);
  // Qwen2.5-Instruct: its chat template (tokenizer_config.json) writes its default system message.
  const fs::path dir = fs::temp_directory_path() / "spin_qwen25_template_test";
  fs::create_directories(dir);
  fs::copy_file(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/qwen2/tokenizer.json", dir / "tokenizer.json",
                fs::copy_options::overwrite_existing);
  for (const nlohmann::json& chat_template :
       {nlohmann::json("{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
                       "assistant.<|im_end|>\\n' }}"),
        nlohmann::json::array({{{"name", "tool_use"}, {"template", "..."}},
                               {{"name", "default"}, {"template", "You are Qwen, created by Alibaba Cloud. You are a "
                                                                 "helpful assistant."}}})}) {
    std::ofstream(dir / "tokenizer_config.json")
        << nlohmann::json{{"eos_token", "<|im_end|>"}, {"chat_template", chat_template}}.dump();
    const auto qwen25 = Tokenizer::load(dir.string());
    EXPECT_EQ(choose_prompt_template("auto", qwen25.get()), PromptTemplate::Qwen25) << chat_template.dump();
  }
  fs::remove_all(dir);
  const auto llama31 = Tokenizer::load(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/llama31");
  EXPECT_EQ(choose_prompt_template("auto", llama31.get()), PromptTemplate::Llama31);
  const auto qwen3 = Tokenizer::load(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/qwen3");
  EXPECT_EQ(choose_prompt_template("auto", qwen3.get()), PromptTemplate::Qwen3);
  const auto phi4 = Tokenizer::load(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/phi4");  // ChatML's and <|im_sep|>
  EXPECT_EQ(choose_prompt_template("auto", phi4.get()), PromptTemplate::Phi4);
  const std::string e = testing::error_of([] { choose_prompt_template("zephyr", nullptr); });
  EXPECT_NE(e.find("unknown prompt template \"zephyr\" (auto, chat, plain, llama3, llama3.1, chatml, qwen2.5, qwen3, gemma, gemma3, llama2, mistral, mistral-v3 or phi4)"),
            std::string::npos)
      << e;
}

TEST(HfBpeTokenizer, UnsupportedFilesAreRefusedByName) {
  const fs::path dir = fs::temp_directory_path() / "spin_hf_bpe_test";
  fs::create_directories(dir);
  std::ifstream in(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/llama3/tokenizer.json");
  const nlohmann::json good = nlohmann::json::parse(in);
  const auto refused = [&](const std::function<void(nlohmann::json&)>& change, const std::string& what) {
    nlohmann::json j = good;
    change(j);
    const fs::path path = dir / "tokenizer.json";
    std::ofstream(path) << j.dump();
    const std::string e = testing::error_of([&] { HfBpeTokenizer t(path.string()); });
    EXPECT_NE(e.find(path.string()), std::string::npos) << e;
    EXPECT_NE(e.find(what), std::string::npos) << e;
  };
  refused([](nlohmann::json& j) { j["normalizer"] = {{"type", "NFKC"}}; }, "normalizer NFKC is not supported (NFC is)");
  refused(
      [](nlohmann::json& j) {
        j["normalizer"] = {{"type", "NFC"}};
        j["added_tokens"][0]["normalized"] = true;
      },
      "is normalized, which spin does not support with a normalizer");
  refused([](nlohmann::json& j) { j["model"]["type"] = "WordPiece"; }, "model type WordPiece");
  refused([](nlohmann::json& j) { j["model"]["byte_fallback"] = true; }, "byte_fallback");
  refused([](nlohmann::json& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\p{N}"; },
          "expression \\p{N} is not one spin knows");
  refused([](nlohmann::json& j) { j["pre_tokenizer"] = {{"type", "Metaspace"}}; }, "pre-tokenizer Metaspace");
  refused([](nlohmann::json& j) { j["added_tokens"][0]["lstrip"] = true; }, "sets lstrip");
  refused([](nlohmann::json& j) { j["model"]["merges"][0] = "nosuchtoken x"; }, "outside the vocabulary");
  fs::remove_all(dir);
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
