// Prompt templates against their references: every template's prompt and response ids against
// transformers' apply_chat_template with the model family's published chat template (or
// mistral-common's instruct tokenizers for Mistral's), on the tokenizer fixtures of tests/data
// (hf_bpe: byte-level BPE tokenizer.json files, *_spm: SentencePiece models, tekken); auto's choice
// from a tokenizer's chat tokens and chat template, and what it refuses.
#include "data/prompt_template.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "common/scratch_dir.h"
#include "common/test_util.h"
#include "data/hf_bpe_tokenizer.h"
#include "data/prompt_template_detail.h"

namespace spin::data {
namespace {

namespace fs = std::filesystem;

// A template against transformers' apply_chat_template (tests/data/<dir>/chat_cases.json): the
// prompt (with the generation prompt) and the response's ids; `separator` is what the oracle's
// whole conversation has after the response's end token (chatml's "\n" between turns).
void expect_chat_cases(const std::string& dir, PromptTemplate p, const std::string& separator,
                       const std::string& file = "chat_cases.json") {
  const auto t = Tokenizer::load(std::string(SPIN_TEST_DATA_DIR) + "/" + dir);
  std::ifstream in(std::string(SPIN_TEST_DATA_DIR) + "/" + dir + "/" + file);
  ASSERT_TRUE(in.good()) << dir << "/" << file;
  int checked = 0, round_trips = 0;
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
    // The text spin writes beside a response's ids (response_text) renders to the same ids again,
    // wherever the tokenizer gives a text back (decode leaves special tokens out: a content holding
    // "<|im_end|>" does not come back) and the template keeps the text whole (V3.1 keeps an answer's
    // text after its first </think>: one holding a second does not come back).
    const bool kept_whole = p != PromptTemplate::DeepSeekV31 || response.content.find("</think>") == std::string::npos;
    if (t->decode(t->encode(response.content)) == response.content && kept_whole) {
      const std::vector<std::int32_t> rendered = render_response(response.content, p, *t);
      EXPECT_EQ(render_response(response_text(rendered, p, *t), p, *t), rendered)
          << dir << ": " << nlohmann::json(response.content).dump();
      ++round_trips;
    }
    ++checked;
  }
  EXPECT_GE(checked, 3);
  EXPECT_GE(round_trips, 2) << dir;
}

// A tokenizer without template `p`'s special tokens (spin's byte-level one) cannot use it: one
// error naming the template (`name`) and the first token it lacks.
void expect_needs_token(PromptTemplate p, const std::string& name, const std::string& token) {
  const ByteTokenizer bytes;
  const std::string e = testing::error_of([&] { render_prompt({{"user", "hi"}}, p, bytes); });
  EXPECT_NE(e.find("the " + name + " prompt template needs the token " + token), std::string::npos) << e;
}

// The tokenizer of fixture `dir`, for which auto chooses `p`, whose responses end with `end`.
std::unique_ptr<Tokenizer> expect_chosen(const std::string& dir, PromptTemplate p, const std::string& end) {
  auto t = Tokenizer::load(std::string(SPIN_TEST_DATA_DIR) + "/" + dir);
  EXPECT_EQ(choose_prompt_template("auto", t.get()), p) << dir;
  EXPECT_EQ(response_end(p, *t), t->token_id(end)) << dir;
  return t;
}

// A copy of fixture `dir` (its `files`) in a scratch folder whose tokenizer_config.json's chat template is changed at
// will: auto's choice for templates beside the fixture's own.
class TemplateVariants {
 public:
  TemplateVariants(const std::string& dir, std::initializer_list<const char*> files, const char* scratch_name)
      : scratch_(scratch_name) {
    const fs::path from = fs::path(SPIN_TEST_DATA_DIR) / dir;
    for (const char* file : files) {
      fs::copy_file(from / file, scratch_.path() / file, fs::copy_options::overwrite_existing);
    }
    config_ = nlohmann::json::parse(std::ifstream(from / "tokenizer_config.json"));
  }
  std::string original() const { return config_.at("chat_template"); }
  const fs::path& path() const { return scratch_.path(); }
  // The copy's tokenizer with `chat_template` in its tokenizer_config.json.
  std::unique_ptr<Tokenizer> with_template(const std::string& chat_template) const {
    nlohmann::json changed = config_;
    changed["chat_template"] = chat_template;
    std::ofstream(scratch_.path() / "tokenizer_config.json", std::ios::trunc) << changed.dump();
    return Tokenizer::load(scratch_.path().string());
  }

 private:
  testing::ScratchDir scratch_;
  nlohmann::json config_;
};

// `text` with every `from` replaced by `to`; a failure where there is none.
std::string replaced(std::string text, const std::string& from, const std::string& to) {
  EXPECT_NE(text.find(from), std::string::npos) << from;
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

// DeepSeek's formats: deepseek-v3 against V3's template's prompts and responses on a tokenizer built as
// DeepSeek-V3's (its three Splits, its markers added); deepseek-r1 on DeepSeek-R1-Distill-Qwen's tokens
// (Qwen2's tokenization, its markers and think tokens added) against R1's template's prompts -- the think
// block opened, earlier answers cut at </think> -- with the response the text the model writes after <think>
// (</think> its added token), then EOS; deepseek-v3.1 on V3's tokenizer against V3.1's template in its default
// mode (thinking off: </think> after <｜Assistant｜>; answers after their first </think>; an assistant message
// after another without a turn of its own). auto picks each by its chat template and refuses other DeepSeek ones.
TEST(HfBpeTokenizer, DeepSeekTemplatesMatchApplyChatTemplate) {
  expect_chat_cases("hf_bpe/deepseek_v3", PromptTemplate::DeepSeekV3, "");
  expect_chat_cases("hf_bpe/deepseek_r1", PromptTemplate::DeepSeekR1, "", "chat_cases_deepseek_r1.json");
  expect_chat_cases("hf_bpe/deepseek_v31", PromptTemplate::DeepSeekV31, "");
  expect_chosen("hf_bpe/deepseek_v3", PromptTemplate::DeepSeekV3, "<｜end▁of▁sentence｜>");
  expect_chosen("hf_bpe/deepseek_v31", PromptTemplate::DeepSeekV31, "<｜end▁of▁sentence｜>");
  EXPECT_EQ(choose_prompt_template("deepseek-v3.1", nullptr), PromptTemplate::DeepSeekV31);
  const auto r1 = expect_chosen("hf_bpe/deepseek_r1", PromptTemplate::DeepSeekR1, "<｜end▁of▁sentence｜>");
  EXPECT_EQ(choose_prompt_template("deepseek-v3", r1.get()), PromptTemplate::DeepSeekV3);  // named: taken
  expect_needs_token(PromptTemplate::DeepSeekR1, "deepseek-r1", "<｜User｜>");

  // R1's first release (no think block in its generation prompt) and a V3-like template that keeps only the
  // last system message: neither is a template spin writes -- refused.
  const testing::ScratchDir scratch("spin_deepseek");
  const fs::path& dir = scratch.path();
  // The fixture's tokenizer with `from` replaced by `to` in its chat template.
  const auto edited = [&](const std::string& fixture, const std::string& from, const std::string& to) {
    const std::string files = std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/" + fixture;
    fs::copy_file(files + "/tokenizer.json", dir / "tokenizer.json", fs::copy_options::overwrite_existing);
    std::ifstream in(files + "/tokenizer_config.json");
    nlohmann::json config = nlohmann::json::parse(in);
    std::string chat_template = config.at("chat_template");
    const std::size_t at = chat_template.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) config["chat_template"] = chat_template.replace(at, from.size(), to);
    std::ofstream(dir / "tokenizer_config.json", std::ios::trunc) << config.dump();
    return Tokenizer::load(dir.string());
  };
  const auto refused = [&](const std::string& fixture, const std::string& from, const std::string& to) {
    const auto t = edited(fixture, from, to);
    const std::string e = testing::error_of([&] { choose_prompt_template("auto", t.get()); });
    EXPECT_NE(e.find("a DeepSeek one (<｜User｜> and <｜Assistant｜> turns) other than R1's, V3's and V3.1's"),
              std::string::npos)
        << e;
  };
  refused("deepseek_r1", "<｜Assistant｜><think>\\n'}}", "<｜Assistant｜>'}}");
  refused("deepseek_v3", "ns.system_prompt + '\\n\\n' + message['content']", "message['content']");
  // V3.1's with R1's rule for earlier answers (the text after the last </think>): not V3.1's.
  refused("deepseek_v31", "content.split('</think>', 1)[1]", "content.split('</think>')[-1]");
  // V3.1's system separator written as two line breaks, as in copies of the template saved as a file: the
  // same template to Jinja, still V3.1's.
  EXPECT_EQ(choose_prompt_template("auto", edited("deepseek_v31", "'\\n\\n'", "'\n\n'").get()),
            PromptTemplate::DeepSeekV31);
  // DeepSeek Coder's tokenizer (its BOS, no <｜User｜>, no chat template): a format spin does not write.
  const auto coder = Tokenizer::load(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/deepseek_coder");
  const std::string e = testing::error_of([&] { choose_prompt_template("auto", coder.get()); });
  EXPECT_NE(e.find("chat format is DeepSeek's (V2's \"User: \" and \"Assistant:\" turns, or Coder's"),
            std::string::npos)
      << e;
}

// DeepSeek-V2-Chat's format (DeepSeek LLM Chat's too) on a tokenizer built as DeepSeek-V2's (its five Splits and
// Digits, its BOS and EOS): "User: " / "Assistant: " turns in text after BOS, a system message where it stands, each
// assistant turn ended by EOS, the generation prompt "Assistant:" and the response after its space -- against its
// template's prompts and responses (responses opening with a space, punctuation, a digit, a line break, CJK, none);
// auto picks it by the chat template.
TEST(HfBpeTokenizer, DeepSeekV2TemplateMatchesApplyChatTemplate) {
  expect_chat_cases("hf_bpe/deepseek_llm", PromptTemplate::DeepSeekV2, "");
  expect_chosen("hf_bpe/deepseek_llm", PromptTemplate::DeepSeekV2, "<｜end▁of▁sentence｜>");
  expect_needs_token(PromptTemplate::DeepSeekV2, "deepseek-v2", "<｜end▁of▁sentence｜>");
}

// Moonshot AI's format on the tiktoken.model fixture (tests/data/kimi, make_kimi_fixture.py): kimi against
// Moonlight-16B-A3B-Instruct's chat template and one written after Kimi K2's, rendered by Jinja and
// encoded by tiktoken -- the default system turn each template writes (its own text) before a
// conversation without one, later system messages in place, <|im_end|> in a message's text read as the
// token, as the template's encoding reads it. auto picks it by the tokens and the template, refusing a
// thinking one or one without a literal default.
TEST(TiktokenTokenizer, KimiTemplateMatchesMoonlightsAndK2sChatTemplates) {
  expect_chat_cases("kimi", PromptTemplate::Kimi, "");
  const auto moonlight = expect_chosen("kimi", PromptTemplate::Kimi, "<|im_end|>");
  expect_needs_token(PromptTemplate::Kimi, "kimi", "<|im_middle|>");
  EXPECT_EQ(choose_prompt_template("kimi", moonlight.get()), PromptTemplate::Kimi);

  const TemplateVariants copy("kimi", {"tiktoken.model", "chat_cases.json", "chat_cases_k2.json"}, "spin_kimi");
  const std::string moonlight_template = copy.original();
  const auto with_template = [&](const std::string& chat_template) { return copy.with_template(chat_template); };
  // Kimi K2's: its own default system message, the role from message.name or message.role.
  const std::string k2 = replaced(moonlight_template, "You are a helpful assistant",
                                  "You are Kimi, an AI assistant created by Moonshot AI.");
  const auto k2_tokenizer = with_template(k2);
  EXPECT_EQ(choose_prompt_template("auto", k2_tokenizer.get()), PromptTemplate::Kimi);
  expect_chat_cases(copy.path().lexically_relative(SPIN_TEST_DATA_DIR).string(), PromptTemplate::Kimi, "",
                    "chat_cases_k2.json");
  // A thinking template, one without a default system turn, one whose default is an expression: refused.
  for (const std::string& other :
       {replaced(moonlight_template, "<|im_middle|>{%- endif -%}", "<|im_middle|><think>{%- endif -%}"),
        replaced(moonlight_template, "<|im_system|>system<|im_middle|>You are a helpful assistant<|im_end|>", ""),
        replaced(moonlight_template, "You are a helpful assistant", "{{ default_system }}")}) {
    const auto t = with_template(other);
    const std::string e = testing::error_of([&] { choose_prompt_template("auto", t.get()); });
    EXPECT_NE(e.find("a Moonshot one (<|im_user|>, <|im_assistant|> and <|im_middle|> turns) other than Moonlight's "
                     "and Kimi K2's"),
              std::string::npos)
        << e;
    if (other.find("<think>") == std::string::npos) {  // named, kimi still needs the default
      const std::string named = testing::error_of([&] { render_prompt({{"user", "hi"}}, PromptTemplate::Kimi, *t); });
      EXPECT_NE(named.find("the kimi prompt template writes the default system message of the tokenizer's chat "
                           "template"),
                std::string::npos)
          << named;
      EXPECT_FALSE(render_prompt({{"system", "s"}, {"user", "hi"}}, PromptTemplate::Kimi, *t).empty());
    }
  }
}

// glm4.5 against GLM-4.5's / GLM-4.6's template with thinking off (tests/data/hf_bpe/glm45: Llama 3's
// tokenization, GLM's markers special tokens, <think>, </think> and /nothink added ones): the user's
// /nothink not doubled, an earlier answer's reasoning dropped, responses stripped (one to nothing), each
// ended by the next turn's <|user|>. auto takes it by its generation prompt's think block, also from a
// chat_template.jinja (which transformers prefers to tokenizer_config.json's); GLM-4-0414's is still refused
// (HfBpeTokenizer.ChatMlTemplateMatchesApplyChatTemplate, below).
TEST(HfBpeTokenizer, Glm45TemplateMatchesApplyChatTemplate) {
  expect_chat_cases("hf_bpe/glm45", PromptTemplate::Glm45, "");
  expect_chosen("hf_bpe/glm45", PromptTemplate::Glm45, "<|user|>");
  expect_needs_token(PromptTemplate::Glm45, "glm4.5", "[gMASK]");
  const testing::ScratchDir scratch("glm45");
  const fs::path dir = scratch.path();
  fs::copy_file(fs::path(SPIN_TEST_DATA_DIR) / "hf_bpe/glm45/tokenizer.json", dir / "tokenizer.json");
  nlohmann::json config =
      nlohmann::json::parse(std::ifstream(fs::path(SPIN_TEST_DATA_DIR) / "hf_bpe/glm45/tokenizer_config.json"));
  const std::string glm45 = config.at("chat_template");
  config["chat_template"] = "{{ messages }}";  // the file's template wins
  std::ofstream(dir / "tokenizer_config.json") << config.dump();
  std::ofstream(dir / "chat_template.jinja") << glm45;
  const auto t = Tokenizer::load(dir.string());
  EXPECT_EQ(t->chat_template(), glm45);
  EXPECT_EQ(choose_prompt_template("auto", t.get()), PromptTemplate::Glm45);
  // A generated answer's ids -- "\n", its text, <|user|> -- back to its text without the line break.
  const std::vector<std::int32_t> ids = render_response("  Hi.\n", PromptTemplate::Glm45, *t);
  EXPECT_EQ(response_text(ids, PromptTemplate::Glm45, *t), "Hi.");
}

// olmo3.1 and olmo3 against Olmo 3.1 Instruct's chat template and the same with Olmo 3 Instruct's default system
// message (tests/data/hf_bpe/olmo3: Llama 3's tokenization, ChatML's and the think tokens, <|endoftext|> the EOS):
// the default only where no message is a system one, a later system message a turn where it stands, responses
// ended by EOS. auto takes each by its default (before qwen3, whose tokens the vocabulary has) from the template
// with its line breaks as escapes or as they are; a Think model's template (its generation prompt's <think>) and
// open-instruct's (the no-functions sentence after every system message) are refused, the same names taken.
TEST(HfBpeTokenizer, Olmo3TemplatesMatchApplyChatTemplate) {
  expect_chat_cases("hf_bpe/olmo3", PromptTemplate::Olmo31, "", "chat_cases_olmo3.1.json");
  expect_chat_cases("hf_bpe/olmo3", PromptTemplate::Olmo3, "", "chat_cases_olmo3.json");
  expect_chosen("hf_bpe/olmo3", PromptTemplate::Olmo31, "<|endoftext|>");
  expect_needs_token(PromptTemplate::Olmo3, "olmo3", "<|im_start|>");
  const TemplateVariants copy("hf_bpe/olmo3", {"tokenizer.json"}, "spin_olmo3");
  const std::string olmo31 = copy.original();
  const auto with_template = [&](const std::string& chat_template) { return copy.with_template(chat_template); };
  const std::string olmo3 = replaced(olmo31, detail::kOlmo31System, detail::kOlmo3System);
  EXPECT_EQ(choose_prompt_template("auto", with_template(olmo3).get()), PromptTemplate::Olmo3);
  EXPECT_EQ(choose_prompt_template("auto", with_template(replaced(olmo31, "\n", "\\n")).get()), PromptTemplate::Olmo31);
  for (const std::string& other :
       {replaced(olmo31, "'<|im_start|>assistant\\n' -}}", "'<|im_start|>assistant\\n<think>' -}}"),
        replaced(olmo31, "{{- '<|im_start|>system\n' + message['content'] -}}",
                 "{{- '<|im_start|>system\n' + message['content'] + ' You do not currently have access to any "
                 "functions. <functions></functions>' -}}"),
        replaced(olmo31, detail::kOlmo31System, "You are OLMo. ")}) {
    const auto t = with_template(other);
    const std::string e = testing::error_of([&] { choose_prompt_template("auto", t.get()); });
    EXPECT_NE(e.find("an OLMo 3 one (ChatML with <|endoftext|> ending the last message and a default system message) "
                     "other than Olmo 3 Instruct's and Olmo 3.1 Instruct's"),
              std::string::npos)
        << e;
    EXPECT_EQ(choose_prompt_template("olmo3.1", t.get()), PromptTemplate::Olmo31);  // named: taken
  }
  // A generated answer's ids back to its text.
  const auto t = Tokenizer::load(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/olmo3");
  const std::vector<std::int32_t> ids = render_response("Hi.\n", PromptTemplate::Olmo3, *t);
  EXPECT_EQ(ids.back(), t->token_id("<|endoftext|>"));
  EXPECT_EQ(response_text(ids, PromptTemplate::Olmo3, *t), "Hi.\n");
}

// alpaca against LLaMA-Factory's alpaca template as the Jinja template it writes into a tokenizer it trained
// (here with <|eot_id|> the EOS): the preamble or the conversation's own system message, an instruction with
// its input on the next line, an earlier answer ended by EOS and "\n\n", responses ended by EOS (the oracle's
// "\n\n" after it opens the next turn). Named only: auto never takes it.
TEST(HfBpeTokenizer, AlpacaTemplateMatchesLlamaFactorysChatTemplate) {
  expect_chat_cases("hf_bpe/llama3", PromptTemplate::Alpaca, "\n\n", "chat_cases_alpaca.json");
  const auto t = Tokenizer::load(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/llama3");
  EXPECT_EQ(choose_prompt_template("alpaca", t.get()), PromptTemplate::Alpaca);
  EXPECT_EQ(response_end(PromptTemplate::Alpaca, *t), t->eos_id());
}

// The llama3 template with Llama-3-Instruct's Jinja template: contents trimmed, the response
// ending with <|eot_id|>.
TEST(HfBpeTokenizer, Llama3TemplateMatchesApplyChatTemplate) {
  expect_chat_cases("hf_bpe/llama3", PromptTemplate::Llama3, "");
  // llama3.1: Llama 3.1 / 3.2 Instruct's template, its system block (knowledge cutoff, date) always.
  expect_chat_cases("hf_bpe/llama31", PromptTemplate::Llama31, "");
  const auto t = Tokenizer::load(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/llama3");
  EXPECT_EQ(response_end(PromptTemplate::Llama3, *t), t->token_id("<|eot_id|>"));
  expect_needs_token(PromptTemplate::Llama3, "llama3", "<|start_header_id|>");
  // Jinja's trim is Python's strip(): Unicode's whitespace (U+3000, U+00A0, U+0085) and U+001F go, a zero-width
  // space (no whitespace to Python) stays -- as apply_chat_template renders these contents with Llama 3's template.
  const std::string spaced = "\x1f\u3000hi\u00a0\u0085";
  EXPECT_EQ(render_prompt({{"user", spaced}}, PromptTemplate::Llama3, *t),
            render_prompt({{"user", "hi"}}, PromptTemplate::Llama3, *t));
  EXPECT_EQ(render_response(spaced, PromptTemplate::Llama3, *t), render_response("hi", PromptTemplate::Llama3, *t));
  EXPECT_NE(render_response("\u200bhi", PromptTemplate::Llama3, *t), render_response("hi", PromptTemplate::Llama3, *t));
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
  // phi4-mini: Phi-4-mini's template (<|role|> content <|end|>, no newlines, no BOS) on an o200k
  // tokenizer whose markers take the whitespace beside them, as its rendered text tokenizes;
  // the conversation's end is <|end|> and the template's EOS (<|endoftext|>). auto picks it.
  expect_chat_cases("hf_bpe/o200k", PromptTemplate::Phi4Mini, "<|endoftext|>");
  // cohere: Aya 23's / Command-R's template (BOS, the system turn untrimmed, the others stripped, the
  // roles alternating), the response ending with <|END_OF_TURN_TOKEN|>; auto picks it by its tokens.
  expect_chat_cases("hf_bpe/cohere", PromptTemplate::Cohere, "");
  const auto cohere = expect_chosen("hf_bpe/cohere", PromptTemplate::Cohere, "<|END_OF_TURN_TOKEN|>");
  const std::string order = testing::error_of([&] {
    render_prompt({{"user", "a"}, {"user", "b"}}, PromptTemplate::Cohere, *cohere);
  });
  EXPECT_NE(order.find("the cohere prompt template needs the roles to alternate"), std::string::npos) << order;
  // Command R7B's template (a system preamble, <|START_RESPONSE|>) over the same tokens: auto refuses it.
  const testing::ScratchDir r7b_scratch("spin_r7b");
  const fs::path& r7b = r7b_scratch.path();
  fs::copy_file(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/cohere/tokenizer.json", r7b / "tokenizer.json",
                fs::copy_options::overwrite_existing);
  std::ofstream(r7b / "tokenizer_config.json")
      << R"({"bos_token": "<BOS_TOKEN>", "eos_token": "<|END_OF_TURN_TOKEN|>", "chat_template": )"
      << R"("{{ bos_token }}<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|># System Preamble ... )"
      << R"(<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|><|START_RESPONSE|>"})";
  const auto r7b_tokenizer = Tokenizer::load(r7b.string());
  const std::string later = testing::error_of([&] { choose_prompt_template("auto", r7b_tokenizer.get()); });
  EXPECT_NE(later.find("a later Command model's"), std::string::npos) << later;
  EXPECT_EQ(choose_prompt_template("cohere", r7b_tokenizer.get()), PromptTemplate::Cohere);  // named: taken
  // SmolLM3's tokenizer has ChatML's and the think tokens, as Qwen3's does, but its template opens
  // with a metadata block: auto picks smollm3 by the template, a named template is taken.
  const testing::ScratchDir smol_scratch("spin_smollm3");
  const fs::path& smol = smol_scratch.path();
  fs::copy_file(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/qwen3/tokenizer.json", smol / "tokenizer.json",
                fs::copy_options::overwrite_existing);
  std::ofstream(smol / "tokenizer_config.json")
      << R"({"eos_token": "<|im_end|>", "chat_template": "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: )"
         R"(June 2025\nToday Date: {{ today }}\nReasoning Mode: /think\n\n"})";
  const auto smol_tokenizer = Tokenizer::load(smol.string());
  EXPECT_EQ(choose_prompt_template("auto", smol_tokenizer.get()), PromptTemplate::SmolLm3);
  EXPECT_EQ(choose_prompt_template("chatml", smol_tokenizer.get()), PromptTemplate::ChatMl);
  // A Granite chat template none of spin's granite templates writes (no default system message spin
  // knows, not 3.0's user turn): auto refuses it rather than falling back to Zephyr's.
  std::ofstream(smol / "tokenizer_config.json", std::ios::trunc)
      << R"({"eos_token": "<|im_end|>", "chat_template": "{{- '<|start_of_role|>system<|end_of_role|>' + )"
         R"(system_message + '<|end_of_text|>\n' }}"})";
  const auto granite = Tokenizer::load(smol.string());
  const std::string not_granite = testing::error_of([&] { choose_prompt_template("auto", granite.get()); });
  EXPECT_NE(not_granite.find("the tokenizer's chat format is Granite's (<|start_of_role|> ... <|end_of_role|>) but "
                             "its chat template is none spin knows"),
            std::string::npos)
      << not_granite;
  EXPECT_EQ(choose_prompt_template("plain", granite.get()), PromptTemplate::Plain);
  EXPECT_EQ(choose_prompt_template("granite4", granite.get()), PromptTemplate::Granite4);  // named: taken
  // An OLMo 3 template other than Instruct's (open-instruct's "olmo" template: ChatML, <|endoftext|> ending the
  // assistant's turn, a default system message) neither: auto refuses it rather than taking it for chatml.
  std::ofstream(smol / "tokenizer_config.json", std::ios::trunc)
      << R"({"eos_token": "<|im_end|>", "chat_template": "{% if not has_system %}{{ '<|im_start|>system\nYou are )"
         R"(OLMo, a helpful function-calling AI assistant built by Ai2.<|im_end|>\n' }}{% endif %}"})";
  const auto olmo3 = Tokenizer::load(smol.string());
  const std::string not_olmo3 = testing::error_of([&] { choose_prompt_template("auto", olmo3.get()); });
  EXPECT_NE(
      not_olmo3.find("the tokenizer's chat template is an OLMo 3 one (ChatML with <|endoftext|> ending the last "
                     "message and a default system message) other than Olmo 3 Instruct's and Olmo 3.1 Instruct's"),
      std::string::npos)
      << not_olmo3;
  EXPECT_EQ(choose_prompt_template("chatml", olmo3.get()), PromptTemplate::ChatMl);
  // GLM-4's ([gMASK]<sop>, <|user|> / <|assistant|> turns) neither: refused rather than taken for chat.
  std::ofstream(smol / "tokenizer_config.json", std::ios::trunc)
      << R"({"eos_token": "<|im_end|>", "chat_template": "[gMASK]<sop>{%- for msg in messages %}{%- if )"
         R"(msg.role == 'system' %}<|system|>\n{{ msg.content }}{%- endif %}{%- endfor %}"})";
  const auto glm = Tokenizer::load(smol.string());
  const std::string not_glm = testing::error_of([&] { choose_prompt_template("auto", glm.get()); });
  EXPECT_NE(not_glm.find("the tokenizer's chat format is GLM's"), std::string::npos) << not_glm;
  EXPECT_EQ(choose_prompt_template("plain", glm.get()), PromptTemplate::Plain);
  // EXAONE 4.0's ([|user|] ... [|endofturn|] turns) neither.
  std::ofstream(smol / "tokenizer_config.json", std::ios::trunc)
      << R"({"eos_token": "<|im_end|>", "chat_template": "{%- for message in messages %}{{ '[|' + message.role + )"
         R"('|]\n' + message.content + '[|endofturn|]\n' }}{%- endfor %}"})";
  const auto exaone = Tokenizer::load(smol.string());
  const std::string not_exaone = testing::error_of([&] { choose_prompt_template("auto", exaone.get()); });
  EXPECT_NE(not_exaone.find("the tokenizer's chat format is EXAONE's"), std::string::npos) << not_exaone;
  // Seed-OSS's (<seed:bos>role ... <seed:eos>) neither.
  std::ofstream(smol / "tokenizer_config.json", std::ios::trunc)
      << R"({"eos_token": "<|im_end|>", "chat_template": "{{ '<seed:bos>' + message.role + '\\n' + )"
         R"(message.content + '<seed:eos>' }}"})";
  const auto seed = Tokenizer::load(smol.string());
  const std::string not_seed = testing::error_of([&] { choose_prompt_template("auto", seed.get()); });
  EXPECT_NE(not_seed.find("the tokenizer's chat format is Seed-OSS's"), std::string::npos) << not_seed;
  // dots.llm1's (<|userprompt|> ... <|endofuserprompt|><|response|>) neither, though the tokenizer has
  // ChatML's tokens.
  std::ofstream(smol / "tokenizer_config.json", std::ios::trunc)
      << R"({"eos_token": "<|im_end|>", "chat_template": "{{ '<|system|>' + system + '<|endofsystem|>' }}{{ )"
         R"('<|userprompt|>' + message.content + '<|endofuserprompt|><|response|>' }}"})";
  const auto dots = Tokenizer::load(smol.string());
  const std::string not_dots = testing::error_of([&] { choose_prompt_template("auto", dots.get()); });
  EXPECT_NE(not_dots.find("the tokenizer's chat format is dots.llm1's"), std::string::npos) << not_dots;
  EXPECT_EQ(choose_prompt_template("chatml", dots.get()), PromptTemplate::ChatMl);  // named: taken
  // A DeepSeek template (<｜User｜> ... <｜Assistant｜>) neither R1's, V3's nor V3.1's: refused.
  std::ofstream(smol / "tokenizer_config.json", std::ios::trunc)
      << R"({"eos_token": "<|im_end|>", "chat_template": "{{ bos_token }}{{ '<｜User｜>' + message['content'] }})"
         R"({{ '<｜Assistant｜>' }}"})";
  const auto deepseek = Tokenizer::load(smol.string());
  const std::string not_deepseek = testing::error_of([&] { choose_prompt_template("auto", deepseek.get()); });
  EXPECT_NE(not_deepseek.find("the tokenizer's chat template is a DeepSeek one (<｜User｜> and <｜Assistant｜> "
                              "turns) other than R1's, V3's and V3.1's"),
            std::string::npos)
      << not_deepseek;
  const auto mini = Tokenizer::load(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/o200k");
  EXPECT_EQ(choose_prompt_template("auto", mini.get()), PromptTemplate::Phi4Mini);
  EXPECT_EQ(response_end(PromptTemplate::Phi4Mini, *mini), mini->token_id("<|end|>"));
  EXPECT_EQ(choose_prompt_template("phi4-mini", mini.get()), PromptTemplate::Phi4Mini);
  const auto t = Tokenizer::load(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/qwen2");
  EXPECT_FALSE(t->bos_id().has_value());
  EXPECT_EQ(t->eos_id(), t->token_id("<|im_end|>"));
  // config.json's ids (Qwen2.5's names <|endoftext|> as BOS): EOS taken, no BOS added.
  t->set_special_ids(*t->token_id("<|endoftext|>"), *t->token_id("<|im_start|>"));
  EXPECT_FALSE(t->bos_id().has_value());
  EXPECT_EQ(t->eos_id(), t->token_id("<|im_start|>"));
  EXPECT_EQ(response_end(PromptTemplate::ChatMl, *t), t->token_id("<|im_end|>"));
  expect_needs_token(PromptTemplate::ChatMl, "chatml", "<|im_start|>");
}

// Granite's templates against apply_chat_template with its published chat templates (Granite 3.0's;
// 3.1-3.3's and 4.0's without their tools and documents branches) on a StarCoder-style tokenizer
// with Granite's role tokens: no BOS, <|start_of_role|> role <|end_of_role|> content <|end_of_text|>
// "\n" per turn, the response ending with <|end_of_text|> (the "\n" after it separates turns).
// granite3.1: a conversation's own system message, or the dated default on the day spin writes
// (the oracle's strftime_now gives that day); granite4: its undated default. auto picks each by
// the tokenizer's chat template.
TEST(HfBpeTokenizer, GraniteTemplatesMatchApplyChatTemplate) {
  expect_chat_cases("hf_bpe/granite", PromptTemplate::Granite30, "\n");
  expect_chat_cases("hf_bpe/granite", PromptTemplate::Granite31, "\n", "chat_cases_granite3.1.json");
  expect_chat_cases("hf_bpe/granite", PromptTemplate::Granite4, "\n", "chat_cases_granite4.json");
  const auto t = Tokenizer::load(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/granite");
  EXPECT_EQ(choose_prompt_template("auto", t.get()), PromptTemplate::Granite31);  // its tokenizer_config's
  EXPECT_EQ(response_end(PromptTemplate::Granite4, *t), t->token_id("<|end_of_text|>"));
  EXPECT_FALSE(t->bos_id() == std::nullopt);  // named by the files, written by none of the templates
  const std::vector<std::int32_t> prompt = render_prompt({{"user", "hi"}}, PromptTemplate::Granite31, *t);
  EXPECT_NE(t->decode(prompt).find("Today's Date: April 16, 2025.\nYou are Granite"), std::string::npos);
  EXPECT_NE(prompt.front(), *t->bos_id());
  // auto tells the three apart by the chat template alone.
  const testing::ScratchDir scratch("spin_granite");
  const fs::path& dir = scratch.path();
  fs::copy_file(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/granite/tokenizer.json", dir / "tokenizer.json");
  const std::vector<std::pair<std::string, PromptTemplate>> templates = {
      {"{%- elif message['role'] == 'user' %}\n    {{- '<|start_of_role|>user<|end_of_role|>' + message['content'] + "
       "'<|end_of_text|>\n' }}",
       PromptTemplate::Granite30},
      {"{%- set g4_default_system_message = 'You are a helpful assistant. Please ensure responses are professional, "
       "accurate, and safe.' %}{%- set system_message = \"Knowledge Cutoff Date: April 2024.\" %}",
       PromptTemplate::Granite4}};
  for (const auto& [chat_template, want] : templates) {
    std::ofstream(dir / "tokenizer_config.json", std::ios::trunc)
        << nlohmann::json{{"eos_token", "<|end_of_text|>"}, {"chat_template", chat_template}}.dump();
    const auto granite = Tokenizer::load(dir.string());
    EXPECT_EQ(choose_prompt_template("auto", granite.get()), want) << chat_template;
  }
  expect_needs_token(PromptTemplate::Granite4, "granite4", "<|start_of_role|>");
}

// smollm3 against apply_chat_template with SmolLM3's template (enable_thinking=False; its strftime_now
// giving the day spin writes) on ChatML's and the think tokens over Llama 3's tokenization: the
// metadata system block with the system message's instructions (its /no_think and trailing
// whitespace taken out) or the default, /system_override's instructions alone, a later system
// message dropped, the assistant's turns after an empty think block without their leading newlines;
// the response ends with <|im_end|>. A system message turning thinking on is refused.
TEST(HfBpeTokenizer, SmolLm3TemplateMatchesApplyChatTemplate) {
  expect_chat_cases("hf_bpe/smollm3", PromptTemplate::SmolLm3, "\n");
  const auto t = expect_chosen("hf_bpe/smollm3", PromptTemplate::SmolLm3, "<|im_end|>");
  const std::string e = testing::error_of([&] {
    render_prompt({{"system", "Think first. /think"}, {"user", "hi"}}, PromptTemplate::SmolLm3, *t);
  });
  EXPECT_NE(e.find("the system message's /think turns thinking on"), std::string::npos) << e;
  // /no_think beside /think keeps thinking off, as the template decides.
  EXPECT_NO_THROW(render_prompt({{"system", "/think /no_think"}, {"user", "hi"}}, PromptTemplate::SmolLm3, *t));
}

// The tulu template (OLMo 2 Instruct's and Tulu 3's format; e2e_chat_to_ids checks its ids against
// apply_chat_template): auto picks it by the chat template's user turn -- over Llama 3's tokens, as
// Tulu 3's tokenizer has them --, not for Zephyr's template (EOS after a user turn); BOS first only
// where the template writes bos_token (OLMo 2's; Tulu 3's does not), EOS first where it writes
// eos_token before its turns (the first OLMo's); the markers as text, an EOS id
// after each assistant turn, the response ending with EOS.
TEST(PromptTemplate, TuluFormatFromItsChatTemplate) {
  const testing::ScratchDir scratch("spin_tulu");
  const fs::path& dir = scratch.path();
  fs::copy_file(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/llama3/tokenizer.json", dir / "tokenizer.json",
                fs::copy_options::overwrite_existing);
  const std::string turns =
      R"({% for message in messages %}{% if message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + )"
      R"('\n' }}{% elif message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + '\n' }}{% elif )"
      R"(message['role'] == 'assistant' %}{{ '<|assistant|>\n'  + message['content'] + eos_token + '\n' }}{% endif )"
      R"(%}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %})";
  const auto load = [&](const std::string& chat_template) {
    std::ofstream(dir / "tokenizer_config.json", std::ios::trunc) << nlohmann::json{
        {"bos_token", "<|begin_of_text|>"},
        {"eos_token", "<|end_of_text|>"},
        {"chat_template", chat_template}}.dump();
    return Tokenizer::load(dir.string());
  };
  const std::vector<Message> chat = {
      {"system", "Be brief."}, {"user", " Hi there "}, {"assistant", "Hello."}, {"user", "Bye"}};
  for (const bool olmo : {true, false}) {
    SCOPED_TRACE(olmo ? "OLMo 2 (bos_token)" : "Tulu 3");
    const auto t = load((olmo ? "{{ bos_token }}" : "") + turns);
    EXPECT_EQ(choose_prompt_template("auto", t.get()), PromptTemplate::Tulu);
    std::vector<std::int32_t> want;
    if (olmo) want.push_back(*t->token_id("<|begin_of_text|>"));
    const auto add = [&](const std::vector<std::int32_t>& ids) { want.insert(want.end(), ids.begin(), ids.end()); };
    add(t->encode("<|system|>\nBe brief.\n<|user|>\n Hi there \n<|assistant|>\nHello."));
    want.push_back(*t->token_id("<|end_of_text|>"));
    add(t->encode("\n<|user|>\nBye\n<|assistant|>\n"));
    EXPECT_EQ(render_prompt(chat, PromptTemplate::Tulu, *t), want);
    std::vector<std::int32_t> response = t->encode(" Bye. ");
    response.push_back(*t->token_id("<|end_of_text|>"));
    EXPECT_EQ(render_response(" Bye. ", PromptTemplate::Tulu, *t), response);
    // config.json's EOS (here <|eot_id|>) ends generation, not the template's turns: they keep the
    // tokenizer files' eos_token, as apply_chat_template writes it.
    t->set_special_ids(std::nullopt, *t->token_id("<|eot_id|>"));
    EXPECT_EQ(render_prompt(chat, PromptTemplate::Tulu, *t), want);
    EXPECT_EQ(response_end(PromptTemplate::Tulu, *t), t->token_id("<|end_of_text|>"));
  }
  // The first OLMo Instruct's template: EOS first, each turn's newline the template's own text after
  // the expression (Jinja keeps it), no system turn -- a system message is dropped, as it drops it.
  const std::string olmo1 =
      "{{ eos_token }}{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\\n' + "
      "message['content'] }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\\n'  + "
      "message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ "
      "'<|assistant|>' }}\n{% endif %}\n{% endfor %}";
  {
    const auto t = load(olmo1);
    EXPECT_EQ(choose_prompt_template("auto", t.get()), PromptTemplate::Tulu);
    std::vector<std::int32_t> want = {*t->token_id("<|end_of_text|>")};
    const auto add = [&](const std::vector<std::int32_t>& ids) { want.insert(want.end(), ids.begin(), ids.end()); };
    add(t->encode("<|user|>\n Hi there \n<|assistant|>\nHello."));
    want.push_back(*t->token_id("<|end_of_text|>"));
    add(t->encode("\n<|user|>\nBye\n<|assistant|>\n"));
    EXPECT_EQ(render_prompt(chat, PromptTemplate::Tulu, *t), want);
  }
  // Zephyr's template ends a user turn with EOS: not Tulu's; Llama 3's tokens decide.
  std::string zephyr = turns;
  const std::string tulu_user = R"('<|user|>\n' + message['content'] + '\n')";
  zephyr.replace(zephyr.find(tulu_user), tulu_user.size(), R"('<|user|>\n' + message['content'] + eos_token)");
  EXPECT_EQ(choose_prompt_template("auto", load(zephyr).get()), PromptTemplate::Llama3);
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
  expect_needs_token(PromptTemplate::Gemma, "gemma", "<start_of_turn>");
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
// answer's trailing spaces removed); auto picks it by those tokens. Mistral Large 2411's v7 on a
// tokenizer.model.v7 (tests/data/mistral_v7_spm) against mistral-common's v7.
TEST(PromptTemplates, Llama2AndMistralTemplatesMatchTheirReferences) {
  expect_chat_cases("llama_spm", PromptTemplate::Llama2, "", "chat_cases_llama2.json");
  expect_chat_cases("llama_spm", PromptTemplate::Mistral, "", "chat_cases_mistral.json");
  expect_chat_cases("mistral_v3_spm", PromptTemplate::MistralV3, "");
  const auto v3 = Tokenizer::load(std::string(SPIN_TEST_DATA_DIR) + "/mistral_v3_spm");
  EXPECT_EQ(choose_prompt_template("auto", v3.get()), PromptTemplate::MistralV3);
  // Mistral Large 2411's layout: the SentencePiece model as tokenizer.model.v7, read for the
  // model and the version; auto picks v7.
  expect_chat_cases("mistral_v7_spm", PromptTemplate::MistralV7, "");
  const auto v7 = Tokenizer::load(std::string(SPIN_TEST_DATA_DIR) + "/mistral_v7_spm");
  EXPECT_EQ(v7->mistral_version(), "v7");
  EXPECT_EQ(v7->token_id("[SYSTEM_PROMPT]"), 16);
  EXPECT_EQ(choose_prompt_template("auto", v7.get()), PromptTemplate::MistralV7);
  EXPECT_EQ(mistral_spm_file(std::string(SPIN_TEST_DATA_DIR) + "/mistral_v7_spm"), "tokenizer.model.v7");
  EXPECT_EQ(mistral_spm_file(std::string(SPIN_TEST_DATA_DIR) + "/mistral_v3_spm"), "");  // tokenizer.model only
  EXPECT_EQ(mistral_version_number("v7"), 7);
  EXPECT_EQ(mistral_version_number("v11"), 11);
  for (const char* other : {"", "v", "7", "vx", "v7a", "v123456"}) EXPECT_EQ(mistral_version_number(other), 0) << other;
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
  const testing::ScratchDir scratch("spin_qwen25_template_test");
  const fs::path& dir = scratch.path();
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
  const auto llama31 = Tokenizer::load(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/llama31");
  EXPECT_EQ(choose_prompt_template("auto", llama31.get()), PromptTemplate::Llama31);
  const auto qwen3 = Tokenizer::load(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/qwen3");
  EXPECT_EQ(choose_prompt_template("auto", qwen3.get()), PromptTemplate::Qwen3);
  const auto phi4 = Tokenizer::load(std::string(SPIN_TEST_DATA_DIR) + "/hf_bpe/phi4");  // ChatML's and <|im_sep|>
  EXPECT_EQ(choose_prompt_template("auto", phi4.get()), PromptTemplate::Phi4);
  const std::string e = testing::error_of([] { choose_prompt_template("zephyr", nullptr); });
  EXPECT_NE(e.find("unknown prompt template \"zephyr\" (auto, chat, plain, llama3, llama3.1, chatml, qwen2.5, qwen3, "
                   "gemma, gemma3, llama2, mistral, mistral-v3, mistral-v7, phi4, phi4-mini, tulu, cohere, granite3.0, "
                   "granite3.1, granite4, smollm3, deepseek-v3, deepseek-r1, deepseek-v3.1, deepseek-v2, kimi, glm4.5, "
                   "alpaca, olmo3 or olmo3.1)"),
            std::string::npos)
      << e;
}

// Mistral NeMo's v3 format and Mistral Small 3's v7 (the same in v11, v13 and v15 without tools,
// checked by the fixture script) against mistral-common's instruct tokenizers on the Tekken
// fixture; auto picks v7 for a tekken.json of version v7 or later, or a tokenizer.json whose chat
// template writes [SYSTEM_PROMPT].
TEST(TekkenTokenizer, MistralV3AndV7TemplatesMatchMistralCommon) {
  expect_chat_cases("tekken", PromptTemplate::MistralV3, "");
  expect_chat_cases("tekken", PromptTemplate::MistralV7, "", "chat_cases_v7.json");
  const std::string data = std::string(SPIN_TEST_DATA_DIR) + "/tekken";
  EXPECT_EQ(choose_prompt_template("auto", Tokenizer::load(data).get()), PromptTemplate::MistralV3);
  EXPECT_EQ(choose_prompt_template("mistral-v7", nullptr), PromptTemplate::MistralV7);
  const testing::ScratchDir scratch("spin_tekken_template");
  const fs::path& dir = scratch.path();
  std::ifstream in(data + "/tekken.json");
  nlohmann::json tekken = nlohmann::json::parse(in);
  for (const char* version : {"v7", "v11", "v13"}) {
    tekken["config"]["version"] = version;
    std::ofstream(dir / "tekken.json") << tekken.dump();
    EXPECT_EQ(choose_prompt_template("auto", Tokenizer::load(dir.string()).get()), PromptTemplate::MistralV7) << version;
  }
  tekken["config"]["version"] = "v3";
  std::ofstream(dir / "tekken.json") << tekken.dump();
  EXPECT_EQ(choose_prompt_template("auto", Tokenizer::load(dir.string()).get()), PromptTemplate::MistralV3);
  fs::remove(dir / "tekken.json");
  fs::copy_file(data + "/tokenizer.json", dir / "tokenizer.json");
  for (const bool system_prompt : {false, true}) {
    std::ofstream(dir / "tokenizer_config.json")
        << nlohmann::json{{"bos_token", "<s>"}, {"eos_token", "</s>"},
                          {"chat_template", system_prompt ? "{{ '[SYSTEM_PROMPT]' + system_message }}" : "[INST]"}}
               .dump();
    EXPECT_EQ(choose_prompt_template("auto", Tokenizer::load(dir.string()).get()),
              system_prompt ? PromptTemplate::MistralV7 : PromptTemplate::MistralV3);
  }
}

}  // namespace
}  // namespace spin::data
