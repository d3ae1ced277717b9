#include "data/examples.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <tuple>

#include "common/scratch_dir.h"
#include "core/error.h"

namespace spin::data {
namespace {

namespace fs = std::filesystem;

class Examples : public ::testing::Test {
 protected:
  const std::string& write(const std::string& text) {
    std::ofstream(path_, std::ios::binary) << text;
    return path_;
  }
  LoadedExamples load(const std::string& text, PromptTemplate t = PromptTemplate::Plain,
                      LengthLimits limits = {}, bool skip = false) {
    return load_examples(write(text), &tok_, t, limits, tok_.vocab_size(), {.skip_bad_lines = skip, .columns = {}});
  }
  std::string error_of(const std::string& text, bool skip = false) {
    try {
      load(text, PromptTemplate::Plain, {}, skip);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
  std::vector<std::int32_t> ids(const std::string& s) const { return tok_.encode(s); }

  ByteTokenizer tok_;  // BOS 1, EOS 2
  testing::ScratchDir scratch_{"spin_examples"};
  std::string path_ = scratch_.file("data.jsonl");
};

TEST_F(Examples, TextPairsWithThePlainTemplate) {
  const auto d = load(R"({"prompt": "2+2=", "response": "4"})" "\n");
  ASSERT_EQ(d.examples.size(), 1u);
  std::vector<std::int32_t> prompt = {1};
  for (auto id : ids("2+2=")) prompt.push_back(id);
  EXPECT_EQ(d.examples[0].prompt, prompt);
  EXPECT_EQ(d.examples[0].response, (std::vector<std::int32_t>{'4' + 3, 2}));
  EXPECT_EQ(d.report.shape, DataShape::TextPair);
}

// Chat, NeMo chat: the last assistant turn is the response; the chat template lays out roles.
TEST_F(Examples, ChatAndNemoShapesGiveTheSameIdsUnderTheChatTemplate) {
  const auto chat = load(R"({"messages": [{"role": "system", "content": "Be brief."}, )"
                         R"({"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]})",
                         PromptTemplate::Chat);
  const auto nemo = load(R"({"system": "Be brief.", "conversations": [{"from": "User", "value": "Hi"}, )"
                         R"({"from": "Assistant", "value": "Hello"}]})",
                         PromptTemplate::Chat);
  EXPECT_EQ(chat.report.shape, DataShape::Chat);
  EXPECT_EQ(nemo.report.shape, DataShape::NemoChat);
  ASSERT_EQ(chat.examples.size(), 1u);
  EXPECT_EQ(chat.examples[0].prompt, nemo.examples[0].prompt);
  // ShareGPT's speakers in the same shape: human, gpt, a system turn.
  const auto sharegpt = load(R"({"conversations": [{"from": "system", "value": "Be brief."}, )"
                             R"({"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]})",
                             PromptTemplate::Chat);
  EXPECT_EQ(sharegpt.report.shape, DataShape::NemoChat);
  ASSERT_EQ(sharegpt.examples.size(), 1u);
  EXPECT_EQ(sharegpt.examples[0].prompt, chat.examples[0].prompt);
  EXPECT_EQ(sharegpt.examples[0].response, chat.examples[0].response);
  std::vector<std::int32_t> want = {1};
  for (const auto& part : {ids("<|system|>\nBe brief."), std::vector<std::int32_t>{2}, ids("\n"),
                           ids("<|user|>\nHi"), std::vector<std::int32_t>{2}, ids("\n"), ids("<|assistant|>\n")})
    want.insert(want.end(), part.begin(), part.end());
  EXPECT_EQ(chat.examples[0].prompt, want);
  auto response = ids("Hello");
  response.push_back(2);
  EXPECT_EQ(chat.examples[0].response, response);
  // The SPIN data sets' records: "real" is the conversation, "generated" (another model's)
  // unread; the SPIN code's generations (and DPO preference sets): "chosen", "rejected" unread.
  for (const auto& [truth, other, shape] : {std::tuple{"real", "generated", DataShape::SpinPairs},
                                            std::tuple{"chosen", "rejected", DataShape::ChosenRejected}}) {
    const auto pair = load(cat(R"({")", truth, R"(": [{"role": "system", "content": "Be brief."}, )",
                               R"({"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}], ")", other,
                               R"(": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey there"}]})"),
                           PromptTemplate::Chat);
    EXPECT_EQ(pair.report.shape, shape) << truth;
    ASSERT_EQ(pair.examples.size(), 1u);
    EXPECT_EQ(pair.examples[0].prompt, want) << truth;
    EXPECT_EQ(pair.examples[0].response, response) << truth;
  }
  // The OpenAI chat format's content, a list of parts: the text parts' text one after another (was an error:
  // "content" must be a string); any other part an error naming its type.
  const auto parts = load(R"({"messages": [{"role": "system", "content": [{"type": "text", "text": "Be "}, )"
                          R"({"type": "text", "text": "brief."}]}, {"role": "user", "content": [{"type": "text", )"
                          R"("text": "Hi"}]}, {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]}]})",
                          PromptTemplate::Chat);
  ASSERT_EQ(parts.examples.size(), 1u);
  EXPECT_EQ(parts.examples[0].prompt, want);
  EXPECT_EQ(parts.examples[0].response, response);
  const std::string image =
      error_of(R"({"messages": [{"role": "user", "content": [{"type": "image", "url": "a.png"}, )"
               R"({"type": "text", "text": "Hi"}]}, {"role": "assistant", "content": "Hello"}]})");
  EXPECT_NE(image.find(path_ + ":1: \"content\" holds a part of type \"image\": spin reads text alone"),
            std::string::npos)
      << image;
  const std::string null = error_of(R"({"messages": [{"role": "user", "content": null}, )"
                                    R"({"role": "assistant", "content": "Hello"}]})");
  EXPECT_NE(null.find(path_ + ":1: \"content\" must be a string or a list of"), std::string::npos) << null;
}

// A record of chat messages [[role, content], ...] as JSON.
nlohmann::json messages(std::initializer_list<std::pair<const char*, const char*>> turns) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [role, content] : turns) list.push_back({{"role", role}, {"content", content}});
  return list;
}

// What two data files give as examples, prompt and response each, are the same.
void expect_same_examples(const LoadedExamples& got, const LoadedExamples& want, const std::string& what) {
  ASSERT_EQ(got.examples.size(), want.examples.size()) << what;
  for (std::size_t i = 0; i < got.examples.size(); ++i) {
    EXPECT_EQ(got.examples[i].prompt, want.examples[i].prompt) << what << ", example " << i;
    EXPECT_EQ(got.examples[i].response, want.examples[i].response) << what << ", example " << i;
    EXPECT_EQ(got.examples[i].generated, want.examples[i].generated) << what << ", example " << i;
  }
}

// TRL's prompt-completion records, text or conversational: the conversation is prompt + completion,
// its last (assistant) message the response -- the ids of the chat record of that conversation.
TEST_F(Examples, TrlPromptCompletionRecordsReadAsTheConversationTheyJoin) {
  const auto as_chat = [&](const nlohmann::json& conversation) {
    return load(nlohmann::json{{"messages", conversation}}.dump() + "\n", PromptTemplate::Chat);
  };
  const auto record = [&](const nlohmann::json& j) { return load(j.dump() + "\n", PromptTemplate::Chat); };
  const auto text = record({{"prompt", "Hi"}, {"completion", "Hello"}});
  EXPECT_EQ(text.report.shape, DataShape::PromptCompletion);
  expect_same_examples(text, as_chat(messages({{"user", "Hi"}, {"assistant", "Hello"}})), "text");
  expect_same_examples(record({{"prompt", messages({{"system", "Be brief."}, {"user", "Hi"}})},
                               {"completion", messages({{"assistant", "Hello"}})}}),
                       as_chat(messages({{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello"}})),
                       "conversational");
  // A completion of several messages: those before its last join the prompt.
  const auto turns = messages({{"user", "Hi"}, {"assistant", "Hello"}, {"user", "More"}, {"assistant", "Sure"}});
  expect_same_examples(record({{"prompt", messages({{"user", "Hi"}})},
                               {"completion", messages({{"assistant", "Hello"}, {"user", "More"}, {"assistant", "Sure"}})}}),
                       as_chat(turns), "several completion messages");
  EXPECT_NE(error_of(R"({"prompt": "Hi", "completion": 5})" "\n").find(":1: \"completion\" must be text or a list of messages"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"prompt": 3, "completion": "x"})" "\n").find(":1: \"prompt\" must be text or a list of messages"),
            std::string::npos);
  EXPECT_NE(error_of(nlohmann::json{{"prompt", "Hi"}, {"completion", messages({{"user", "x"}})}}.dump() + "\n")
                .find("the last message must be the assistant's"),
            std::string::npos);
}

// Preference records with the prompt apart (TRL's explicit prompt: "chosen" and "rejected" its
// completions, text or messages) give what the same records with the prompt inside each
// conversation give; a "prompt" beside whole conversations (HuggingFaceH4/ultrafeedback_binarized)
// is not read twice.
TEST_F(Examples, PreferenceRecordsWithAnExplicitPromptReadTheirCompletions) {
  const auto given = [&](const nlohmann::json& j) {
    return load_examples(write(j.dump() + "\n"), &tok_, PromptTemplate::Chat, {}, tok_.vocab_size(), {.read_generated = true, .columns = {}});
  };
  const auto implicit = given({{"chosen", messages({{"user", "Hi"}, {"assistant", "Hello"}})},
                               {"rejected", messages({{"user", "Hi"}, {"assistant", "Hey there"}})}});
  auto generated = ids("Hey there");
  generated.push_back(2);
  ASSERT_EQ(implicit.examples.size(), 1u);
  EXPECT_EQ(implicit.examples[0].generated, generated);
  const auto text = given({{"prompt", "Hi"}, {"chosen", "Hello"}, {"rejected", "Hey there"}});
  EXPECT_EQ(text.report.shape, DataShape::ChosenRejected);
  expect_same_examples(text, implicit, "text");
  expect_same_examples(given({{"prompt", messages({{"user", "Hi"}})},
                              {"chosen", messages({{"assistant", "Hello"}})},
                              {"rejected", messages({{"assistant", "Hey there"}})}}),
                       implicit, "conversational");
  expect_same_examples(given({{"prompt", "Hi"},
                              {"chosen", messages({{"user", "Hi"}, {"assistant", "Hello"}})},
                              {"rejected", messages({{"user", "Hi"}, {"assistant", "Hey there"}})}}),
                       implicit, "a prompt beside whole conversations");
}

// Alpaca's instruction / input / output (Dolly's context / response; LLaMA-Factory's system and
// history): one user message, the instruction then, where the input is not blank, a newline and the
// input -- the ids of the chat record of that conversation.
TEST_F(Examples, AlpacaAndDollyRecordsAskTheInstructionThenTheInput) {
  const auto as_chat = [&](const nlohmann::json& conversation) {
    return load(nlohmann::json{{"messages", conversation}}.dump() + "\n", PromptTemplate::Chat);
  };
  const auto record = [&](const nlohmann::json& j) { return load(j.dump() + "\n", PromptTemplate::Chat); };
  const auto with_input = as_chat(messages({{"user", "Add.\n2+2"}, {"assistant", "4"}}));
  const auto alpaca = record({{"instruction", "Add."}, {"input", "2+2"}, {"output", "4"}});
  EXPECT_EQ(alpaca.report.shape, DataShape::Alpaca);
  expect_same_examples(alpaca, with_input, "alpaca");
  expect_same_examples(record({{"instruction", "Add."}, {"context", "2+2"}, {"response", "4"}, {"category", "qa"}}),
                       with_input, "dolly");
  expect_same_examples(record({{"instruction", "Add."}, {"input", " "}, {"output", "4"}}),
                       as_chat(messages({{"user", "Add."}, {"assistant", "4"}})), "a blank input");
  expect_same_examples(record({{"system", "Be brief."},
                               {"history", nlohmann::json::array({nlohmann::json::array({"Hi", "Hello"})})},
                               {"instruction", "Add."},
                               {"input", "2+2"},
                               {"output", "4"}}),
                       as_chat(messages({{"system", "Be brief."},
                                         {"user", "Hi"},
                                         {"assistant", "Hello"},
                                         {"user", "Add.\n2+2"},
                                         {"assistant", "4"}})),
                       "system and history");
  EXPECT_NE(error_of(R"({"instruction": "Add.", "input": "2+2"})" "\n").find(":1: an instruction record needs its answer"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"instruction": "Add.", "history": [["Hi"]], "output": "4"})" "\n")
                .find(":1: every \"history\" entry must be an [instruction, response] pair"),
            std::string::npos);
}

// data.columns: the prompt's and the response's keys (and a generated response's) in records of any
// layout, each text or messages, read as TRL's prompt and completion; malformed lists refused.
TEST_F(Examples, GivenColumnsReadRecordsOfAnyLayout) {
  const auto by = [&](const nlohmann::json& j, const std::string& columns, bool generated = false) {
    return load_examples(write(j.dump() + "\n"), &tok_, PromptTemplate::Chat, {}, tok_.vocab_size(),
                         {.read_generated = generated, .columns = RecordColumns::parse(columns, "--columns")});
  };
  const auto as_chat = [&](const nlohmann::json& conversation) {
    return load(nlohmann::json{{"messages", conversation}}.dump() + "\n", PromptTemplate::Chat);
  };
  const auto gsm8k = by({{"question", "2+2?"}, {"answer", "4"}, {"id", 7}}, "question,answer");
  EXPECT_EQ(gsm8k.report.shape, DataShape::Columns);
  expect_same_examples(gsm8k, as_chat(messages({{"user", "2+2?"}, {"assistant", "4"}})), "text");
  expect_same_examples(by({{"q", messages({{"system", "Be brief."}, {"user", "2+2?"}})}, {"a", messages({{"assistant", "4"}})}},
                          "q,a"),
                       as_chat(messages({{"system", "Be brief."}, {"user", "2+2?"}, {"assistant", "4"}})), "messages");
  // Keys a detected shape would read mean nothing else under the columns: "prompt" here is the answer.
  expect_same_examples(by({{"messages", "2+2?"}, {"prompt", "4"}}, "messages,prompt"), gsm8k, "shape keys");
  auto five = ids("5");
  five.push_back(2);
  EXPECT_EQ(by({{"question", "2+2?"}, {"answer", "4"}, {"wrong", "5"}}, "question,answer,wrong", true).examples.at(0).generated,
            five);
  const auto error = [&](const auto& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error([&] { by({{"question", "2+2?"}}, "question,answer"); }).find(":1: no \"answer\""), std::string::npos);
  EXPECT_NE(error([&] { by({{"question", "2+2?"}, {"answer", "4"}}, "question,answer", true); })
                .find("carry no generated response"),
            std::string::npos);
  for (const char* bad : {"question", "question,,answer", "a,b,c,d", ",a"}) {
    EXPECT_NE(error([&] { RecordColumns::parse(bad, "data.columns"); }).find("data.columns must be PROMPT,RESPONSE"),
              std::string::npos)
        << bad;
  }
  EXPECT_EQ(RecordColumns::parse("question", "--columns", false).prompt, "question");
  EXPECT_FALSE(RecordColumns::parse("", "--columns").given());
  // Prompts to generate from, by the prompt's column.
  write(R"({"question": "2+2?"})" "\n" R"({"question": [{"role": "user", "content": "2+2?"}], "answer": "4"})" "\n");
  const RecordColumns question = RecordColumns::parse("question", "--columns", false);
  const auto prompts = load_prompts(path_, &tok_, PromptTemplate::Chat, question);
  ASSERT_EQ(prompts.prompts.size(), 2u);
  EXPECT_EQ(prompts.prompts[0], gsm8k.examples[0].prompt);
  EXPECT_EQ(prompts.prompts[1], gsm8k.examples[0].prompt);
  write(R"({"prompt": "2+2?"})" "\n");
  EXPECT_NE(error([&] { load_prompts(path_, &tok_, PromptTemplate::Chat, question); }).find(":1: no \"question\""),
            std::string::npos);
}

// Prompts to generate from in the same shapes: TRL's conversational prompt and an Alpaca record's
// instruction and input render as the chat record of those messages; token ids stay ids.
TEST_F(Examples, GenerationPromptsTakeTrlAndAlpacaRecords) {
  write(nlohmann::json{{"prompt", messages({{"system", "Be brief."}, {"user", "Hi"}})}}.dump() + "\n" +
        nlohmann::json{{"messages", messages({{"system", "Be brief."}, {"user", "Hi"}})}}.dump() + "\n" +
        R"({"instruction": "Add.", "input": "2+2"})" "\n" +
        nlohmann::json{{"messages", messages({{"user", "Add.\n2+2"}})}}.dump() + "\n" +
        R"({"prompt": [5, 6]})" "\n");
  const auto got = load_prompts(path_, &tok_, PromptTemplate::Chat);
  ASSERT_EQ(got.prompts.size(), 5u);
  EXPECT_EQ(got.prompts[0], got.prompts[1]);
  EXPECT_EQ(got.prompts[2], got.prompts[3]);
  EXPECT_NE(got.prompts[0], got.prompts[2]);
  EXPECT_EQ(got.prompts[4], (std::vector<std::int32_t>{5, 6}));
}

// Generated responses given with the data (spin.generations = data): "generated" of the SPIN
// data sets and token-id records, "rejected" of chosen/rejected records; the prompt must be the
// ground truth's; the response's limits hold for them too.
TEST_F(Examples, GivenGeneratedResponsesAreReadWhenAsked) {
  const std::string spin_record =
      R"({"real": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}], )"
      R"("generated": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey there"}]})" "\n";
  auto given = [&](const std::string& text, LengthLimits limits = {}) {
    return load_examples(write(text), &tok_, PromptTemplate::Chat, limits, tok_.vocab_size(), {.read_generated = true, .columns = {}});
  };
  auto want = ids("Hey there");
  want.push_back(2);  // EOS, as every response
  EXPECT_EQ(given(spin_record).examples[0].generated, want);
  EXPECT_TRUE(load(spin_record, PromptTemplate::Chat).examples[0].generated.empty()) << "read only when asked";
  const auto chosen = given(R"({"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}], )"
                            R"("rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey there"}]})" "\n");
  EXPECT_EQ(chosen.examples[0].generated, want);
  const auto token_ids = load_examples(write(R"({"prompt": [1, 5], "response": [7, 2], "generated": [8, 9, 2]})" "\n"),
                                       nullptr, PromptTemplate::Chat, {}, 259, {.read_generated = true, .columns = {}});
  EXPECT_EQ(token_ids.examples[0].generated, (std::vector<std::int32_t>{8, 9, 2}));
  // Truncated to the response's limit like the response.
  EXPECT_EQ(given(spin_record, {0, 4, 0, Overlong::Truncate}).examples[0].generated, (std::vector<std::int32_t>(want.begin(), want.begin() + 4)));

  const auto error = [&](const std::string& text) {
    try {
      given(text);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error(R"({"real": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]})" "\n")
                .find(":1: no \"generated\" response"),
            std::string::npos);
  EXPECT_NE(error(R"({"real": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}], )"
                  R"("generated": [{"role": "user", "content": "Ho"}, {"role": "assistant", "content": "Hey"}]})" "\n")
                .find("conversation's prompt differs from the ground truth's"),
            std::string::npos);
  EXPECT_NE(error(R"({"prompt": "2+2=", "response": "4"})" "\n").find("records carry no generated response"),
            std::string::npos);
  const std::string token_error = [&] {
    try {
      load_examples(write(R"({"prompt": [1, 5], "response": [7, 2], "generated": [8, 300]})" "\n"), nullptr,
                    PromptTemplate::Chat, {}, 259, {.read_generated = true, .columns = {}});
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  }();
  EXPECT_NE(token_error.find("token id 300 is outside the vocabulary"), std::string::npos) << token_error;
}

// A comma-separated list of files: read one after another (the SPIN code's iteration k trains
// on SPIN_iter<k-1> and SPIN_iter<k> together), one shape for all, errors naming file:line.
TEST_F(Examples, SeveralFilesAreReadOneAfterAnother) {
  const std::string second = path_ + ".second";
  std::ofstream(second) << R"({"prompt": "c", "response": "3"})" "\n" R"({"prompt": "d", "response": "4"})" "\n";
  write(R"({"prompt": "a", "response": "1"})" "\n");
  const auto both = load_examples(path_ + "," + second, &tok_, PromptTemplate::Plain, {}, tok_.vocab_size());
  ASSERT_EQ(both.examples.size(), 3u);
  EXPECT_EQ(both.report.records, 3);
  EXPECT_EQ(both.examples[2].response, load_examples(second, &tok_, PromptTemplate::Plain, {}, tok_.vocab_size()).examples[1].response);
  EXPECT_EQ(both.examples[2].line, 2) << "lines count within their file";
  EXPECT_EQ(both.location(both.examples[2]), second + ":2");
  EXPECT_EQ(both.location(both.examples[0]), path_ + ":1");
  const auto prompts = load_prompts(path_ + "," + second, &tok_, PromptTemplate::Plain);
  ASSERT_EQ(prompts.prompts.size(), 3u);
  EXPECT_EQ(prompts.where, (std::vector<std::string>{path_ + ":1", second + ":1", second + ":2"}));
  EXPECT_EQ(prompts.prompts[2], both.examples[2].prompt);
  std::ofstream(second) << R"({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]})" "\n";
  const auto error = [&](const std::string& paths) {
    try {
      load_examples(paths, &tok_, PromptTemplate::Plain, {}, tok_.vocab_size());
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error(path_ + "," + second).find(second + ":1: a chat messages record among prompt/response text records"),
            std::string::npos);
  EXPECT_NE(error(path_ + ",").find("an empty file name in the list"), std::string::npos);
}

// A wildcard stands for its files in name order (the Hub's shards: train_sft-00000-of-00003.parquet, ...),
// beside named ones; a pattern nothing matches is an error naming it.
TEST_F(Examples, PatternsStandForTheFilesTheyMatchInNameOrder) {
  const testing::ScratchDir shards_dir("spin_shards");
  const fs::path& dir = shards_dir.path();
  for (const char* shard : {"train-00002-of-00003.jsonl", "train-00000-of-00003.jsonl", "train-00001-of-00003.jsonl"}) {
    std::ofstream(dir / shard) << R"({"prompt": ")" << shard[10] << R"(", "response": "x"})" "\n";
  }
  std::ofstream(dir / "test-00000-of-00001.jsonl") << R"({"prompt": "t", "response": "x"})" "\n";
  write(R"({"prompt": "a", "response": "x"})" "\n");
  const std::string shards = (dir / "train-*-of-0000[0-9].jsonl").string();
  EXPECT_EQ(data_files(path_ + "," + shards),
            (std::vector<std::string>{path_, (dir / "train-00000-of-00003.jsonl").string(),
                                      (dir / "train-00001-of-00003.jsonl").string(),
                                      (dir / "train-00002-of-00003.jsonl").string()}));
  const auto d = load_examples(shards, &tok_, PromptTemplate::Plain, {}, tok_.vocab_size());
  ASSERT_EQ(d.examples.size(), 3u);
  EXPECT_EQ(d.location(d.examples[2]), (dir / "train-00002-of-00003.jsonl").string() + ":1");
  const std::string missing = (dir / "validation-*.parquet").string();
  try {
    data_files(path_ + "," + missing);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(missing + ": no file matches the pattern"), std::string::npos) << e.what();
  }
}

// A JSON file holding one array of records (ShareGPT's dumps: ShareGPT_V3_unfiltered_cleaned_split.json),
// pretty-printed or not, reads as the same records a line each; its errors name the element.
TEST_F(Examples, JsonArraysReadAsTheirElementsOneAfterAnother) {
  const std::string a = R"({"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]})";
  const std::string b = R"({"conversations": [{"from": "system", "value": "Be brief."}, )"
                        R"({"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}]})";
  const std::string bad = R"({"conversations": [{"from": "bard", "value": "x"}, {"from": "gpt", "value": "y"}]})";
  const auto lines = load(a + "\n" + b + "\n", PromptTemplate::Chat);
  const auto array = load("\n  [\n  " + a + ",\n  " + b + "\n]\n", PromptTemplate::Chat);
  ASSERT_EQ(array.examples.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(array.examples[i].prompt, lines.examples[i].prompt);
    EXPECT_EQ(array.examples[i].response, lines.examples[i].response);
  }
  EXPECT_EQ(array.location(array.examples[1]), path_ + ":2");
  EXPECT_TRUE(holds_text(path_));
  // After a UTF-8 byte order mark (Windows editors write one) too, as an array and as lines: the array had been
  // read as JSONL, its one line "expected a JSON object".
  const std::string mark = "\xEF\xBB\xBF";
  for (const auto& [text, name] :
       {std::pair{mark + "[" + a + ", " + b + "]", "array"}, std::pair{mark + a + "\n" + b + "\n", "lines"}}) {
    const auto marked = load(text, PromptTemplate::Chat);
    ASSERT_EQ(marked.examples.size(), 2u) << name;
    EXPECT_EQ(marked.examples[1].prompt, lines.examples[1].prompt) << name;
    EXPECT_EQ(marked.examples[1].response, lines.examples[1].response) << name;
  }
  const auto skipped = load("[" + a + ", " + bad + ", " + b + "]", PromptTemplate::Chat, {}, true);
  EXPECT_EQ(skipped.examples.size(), 2u);
  EXPECT_EQ(skipped.report.skipped, 1);
  EXPECT_NE(error_of("[" + a + ", " + bad + "]").find(path_ + ":2: unknown speaker \"bard\""), std::string::npos);
  EXPECT_NE(error_of("[" + a + ", 7]").find(path_ + ":2: expected a JSON object"), std::string::npos);
  EXPECT_NE(error_of("[" + a + ", {\"prompt\": ]").find(path_ + ": not valid JSON"), std::string::npos);
  EXPECT_NE(error_of(" [ ] ").find(path_ + ": no records"), std::string::npos);
  // Whether a file holds text is told by its first record alone: what follows is not read.
  write("[" + a + ", {\"prompt\": ]");
  EXPECT_TRUE(holds_text(path_));
}

// Tokenizing on several workers gives what one record at a time gives: the examples in order, the
// counts, and the first error by record -- a bad response before a line that is not JSON in one
// batch, a bad record past the first batch of 2048.
TEST_F(Examples, WorkersGiveWhatOneRecordAtATimeGives) {
  std::string text;
  for (int i = 1; i <= 5000; ++i) {
    if (i == 3000) {
      text += R"({"prompt": "x", "response": ""})" "\n";  // empty response: skipped or the error
    } else if (i == 4000) {
      text += "{not json\n";
    } else if (i % 700 == 0) {
      text += R"({"prompt": ")" + std::string(static_cast<std::size_t>(i % 97), 'p') + R"(", "response": "long"})" "\n";
    } else {
      text += R"({"prompt": "q)" + std::to_string(i) + R"(", "response": "a)" + std::to_string(i * 7) + R"("})" "\n";
    }
  }
  write(text);
  const LengthLimits limits{0, 0, 20, Overlong::Drop};
  const auto one = load_examples(path_, &tok_, PromptTemplate::Plain, limits, tok_.vocab_size(), {.skip_bad_lines = true, .workers = 1, .columns = {}});
  const auto four = load_examples(path_, &tok_, PromptTemplate::Plain, limits, tok_.vocab_size(), {.skip_bad_lines = true, .workers = 4, .columns = {}});
  EXPECT_EQ(one.report.skipped, 2);
  EXPECT_GT(one.report.dropped, 0);
  EXPECT_EQ(four.report.summary("x"), one.report.summary("x"));
  ASSERT_EQ(four.examples.size(), one.examples.size());
  for (std::size_t i = 0; i < one.examples.size(); ++i) {
    ASSERT_EQ(four.examples[i].prompt, one.examples[i].prompt) << i;
    ASSERT_EQ(four.examples[i].response, one.examples[i].response) << i;
    ASSERT_EQ(four.examples[i].line, one.examples[i].line) << i;
  }
  for (const int workers : {1, 4}) {
    try {
      load_examples(path_, &tok_, PromptTemplate::Plain, limits, tok_.vocab_size(), {.workers = workers, .columns = {}});
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path_ + ":3000: the response is empty"), std::string::npos) << e.what();
    }
  }
}

TEST_F(Examples, PreTokenizedRecordsAreTakenAsTheyAre) {
  const auto d = load_examples(write(R"({"prompt": [1, 5, 6], "response": [7, 2]})" "\n"), nullptr,
                               PromptTemplate::Chat, {}, 259);
  EXPECT_EQ(d.report.shape, DataShape::TokenIds);
  EXPECT_EQ(d.examples[0].prompt, (std::vector<std::int32_t>{1, 5, 6}));
  EXPECT_THROW(load_examples(path_, nullptr, PromptTemplate::Chat, {}, 6), Error);  // id 6, 7 >= 6
}

TEST_F(Examples, OverlongExamplesAreTruncatedOrDroppedAndCounted) {
  const std::string data = R"({"prompt": "abcdefgh", "response": "xyz"}
{"prompt": "ab", "response": "x"}
{"prompt": "a", "response": "uvwxyz0123"}
)";
  LengthLimits limits{5, 4, 0, Overlong::Drop};
  auto d = load(data, PromptTemplate::Plain, limits);
  EXPECT_EQ(d.examples.size(), 1u);
  EXPECT_EQ(d.report.dropped, 2);
  limits.overlong = Overlong::Truncate;
  d = load(data, PromptTemplate::Plain, limits);
  ASSERT_EQ(d.examples.size(), 3u);
  EXPECT_EQ(d.report.truncated, 2);
  EXPECT_EQ(d.examples[0].prompt, ids("defgh")) << "the end of the prompt is kept";
  EXPECT_EQ(d.examples[2].response, ids("uvwx")) << "the start of the response is kept";
  // A sequence limit cuts the response; a 9-token prompt leaves no room in 6 and is dropped.
  d = load(data, PromptTemplate::Plain, {0, 0, 6, Overlong::Truncate});
  ASSERT_EQ(d.examples.size(), 2u);
  EXPECT_EQ(d.examples[1].prompt.size() + d.examples[1].response.size(), 6u);
  EXPECT_EQ(d.report.dropped, 1);
  EXPECT_NE(d.report.summary("f.jsonl").find("1 dropped as too long"), std::string::npos);
}

TEST_F(Examples, BadLinesNameFileAndLineOrAreCountedWhenSkipped) {
  const std::string bad = R"({"prompt": "a", "response": "b"}
{"prompt": "a", "response": ""}
{"prompt": "a" "response": "b"}
{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}
)";
  EXPECT_NE(error_of(bad).find(":2: the response is empty"), std::string::npos) << error_of(bad);
  const auto skipped = load(bad, PromptTemplate::Plain, {}, true);
  EXPECT_EQ(skipped.report.skipped, 3);
  EXPECT_EQ(skipped.examples.size(), 1u);
  EXPECT_NE(error_of("{\"prompt\": \"a\" \"response\": \"b\"}\n").find(":1: not valid JSON"), std::string::npos);
  EXPECT_NE(error_of("{\"prompt\": \"a\", \"response\": \"b\"}\n{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}, "
                     "{\"role\": \"assistant\", \"content\": \"y\"}]}\n").find(":2: a chat messages record among prompt/response text records"),
            std::string::npos);
  EXPECT_NE(error_of("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n").find("last message must be the assistant's"),
            std::string::npos);
  // Invalid UTF-8: refused, and the message (which quotes the parser's last bytes) printable on one line.
  const std::string invalid = error_of("{\"prompt\": \"a\", \"response\": \"\xff\xfe\"}\n");
  EXPECT_NE(invalid.find(":1: not valid JSON"), std::string::npos) << invalid;
  EXPECT_NE(invalid.find("\\xff"), std::string::npos) << invalid;
  EXPECT_EQ(invalid.find('\xff'), std::string::npos) << invalid;
  EXPECT_EQ(invalid.find('\n'), std::string::npos) << invalid;
  EXPECT_NE(error_of("{\"question\": \"a\"}\n").find("unknown record shape"), std::string::npos);
  const std::string bot =
      error_of(R"({"conversations": [{"from": "human", "value": "a"}, {"from": "bot", "value": "b"}]})"
               "\n");
  EXPECT_NE(bot.find(":1: unknown speaker \"bot\" (NeMo's User or Assistant, ShareGPT's human, gpt or system)"),
            std::string::npos)
      << bot;
  const std::string last =
      error_of(R"({"conversations": [{"from": "gpt", "value": "a"}, {"from": "human", "value": "b"}]})"
               "\n");
  EXPECT_NE(last.find("the last turn must be the assistant's"), std::string::npos) << last;
  EXPECT_NE(error_of("{\"real\": []}\n").find("\"real\" must be a non-empty list"), std::string::npos);
  EXPECT_NE(error_of("").find("no records"), std::string::npos);
  // What a template refuses names the record: a system message under the gemma template.
  const auto gemma = Tokenizer::load(std::string(SPIN_TEST_DATA_DIR) + "/gemma_spm");
  const std::string chat = R"({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]})" "\n";
  const std::string with_system =
      R"({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "x"}, )"
      R"({"role": "assistant", "content": "y"}]})" "\n";
  const std::string e = [&] {
    try {
      load_examples(write(chat + with_system), gemma.get(), PromptTemplate::Gemma, {}, gemma->vocab_size());
    } catch (const Error& error) {
      return std::string(error.what());
    }
    return std::string();
  }();
  EXPECT_NE(e.find(path_ + ":2: the gemma prompt template has no system role"), std::string::npos) << e;
}

}  // namespace
}  // namespace spin::data
