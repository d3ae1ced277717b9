#include "data/examples.h"

#include <glob.h>

#include <algorithm>
#include <exception>
#include <functional>
#include <optional>

#include "core/error.h"
#include "core/threads.h"
#include "data/jsonl.h"
#include "data/records.h"

namespace spin::data {

namespace {

using nlohmann::json;

// The keys the shapes below read: a Parquet file's other columns are not decoded.
const std::vector<std::string> kExampleKeys = {"prompt", "response", "completion", "messages", "system",
                                               "conversations", "real", "generated", "chosen", "rejected",
                                               "instruction", "input", "context", "output", "history"};
const std::vector<std::string> kPromptKeys = {"prompt", "tokens", "messages", "instruction", "input",
                                              "context", "system", "history"};

// Records tokenized a batch at a time (their objects held meanwhile: ~10 MB of chat text), by at
// most this many workers by default.
constexpr std::size_t kExampleBatch = 2048;
constexpr int kMaxWorkers = 16;

// render_prompt, its errors (a role the template refuses, a token the tokenizer lacks) naming the record.
std::vector<std::int32_t> render_prompt_at(const std::vector<Message>& messages, PromptTemplate prompt_template,
                                           const Tokenizer& tokenizer, const std::string& where) {
  try {
    return render_prompt(messages, prompt_template, tokenizer);
  } catch (const Error& e) {
    fail(where, ": ", e.what());
  }
}

// A record's shape when it holds text, by its keys.
std::optional<DataShape> text_shape(const json& j) {
  if (j.contains("messages")) return DataShape::Chat;
  if (j.contains("real")) return DataShape::SpinPairs;
  if (j.contains("chosen")) return DataShape::ChosenRejected;
  if (j.contains("conversations")) return DataShape::NemoChat;
  if (j.contains("completion")) return DataShape::PromptCompletion;
  if (j.contains("instruction")) return DataShape::Alpaca;
  if (j.contains("prompt") && j.at("prompt").is_string()) return DataShape::TextPair;
  return std::nullopt;
}

DataShape detect_shape(const json& j, const std::string& where) {
  if (const auto text = text_shape(j)) return *text;
  if (j.contains("prompt")) return DataShape::TokenIds;
  fail(where, ": unknown record shape; expected {\"prompt\", \"response\"}, {\"prompt\", \"completion\"}, "
       "{\"messages\": [...]}, {\"conversations\": [...]}, {\"real\": [...]}, {\"chosen\": [...]} or "
       "{\"instruction\", \"output\"}");
}

bool blank(const std::string& s) { return s.find_first_not_of(" \t\r\n") == std::string::npos; }

// The prompt messages and the response text of a conversation whose last turn is the
// assistant's.
struct Conversation {
  std::vector<Message> prompt;
  std::string response;
};

// A message's content: its text, or -- the OpenAI chat format's, which multimodal models' chat templates take -- a list
// of parts whose text parts are the text, one after another as those templates join them (an image or another
// kind of part is an error naming it: the models spin trains read text).
std::string message_content(const json& m, const std::string& where) {
  require(m.contains("content"), where, ": missing \"content\"");
  const json& content = m.at("content");
  if (content.is_string()) return content.get<std::string>();
  require(content.is_array(), where,
          ": \"content\" must be a string or a list of {\"type\": \"text\", \"text\": ...} parts");
  std::string text;
  for (const json& part : content) {
    require(part.is_object() && part.contains("type") && part.at("type").is_string(), where,
            ": a part of \"content\" must be an object with a \"type\"");
    const std::string type = part.at("type").get<std::string>();
    require(type == "text", where, ": \"content\" holds a part of type \"", type, "\": spin reads text alone");
    text += jsonl::string_field(part, "text", where);
  }
  return text;
}

// The chat messages under `key` ("messages"; "real" or "chosen" in the SPIN data sets; "prompt", "completion").
std::vector<Message> read_messages(const json& j, const std::string& where, const char* key = "messages") {
  const json& list = j.at(key);
  require(list.is_array() && !list.empty(), where, ": \"", key, "\" must be a non-empty list");
  std::vector<Message> messages;
  for (const json& m : list) {
    require(m.is_object(), where, ": every message must be an object with role and content");
    const std::string role = jsonl::string_field(m, "role", where);
    require(role == "system" || role == "user" || role == "assistant", where, ": unknown role \"",
            role, "\" (system, user or assistant)");
    messages.push_back({role, message_content(m, where)});
  }
  return messages;
}

// A conversation whose last message, the assistant's, is the response.
Conversation split_response(std::vector<Message> messages, const std::string& where) {
  require(messages.back().role == "assistant", where,
          ": the last message must be the assistant's (the ground-truth response)");
  Conversation c;
  c.response = std::move(messages.back().content);
  messages.pop_back();
  c.prompt = std::move(messages);
  return c;
}

Conversation read_chat(const json& j, const std::string& where, const char* key = "messages") {
  return split_response(read_messages(j, where, key), where);
}

// A prompt given apart from its response under `key` (TRL's prompt-completion and explicit-prompt
// preference records' "prompt", data.columns' first): text -- one user message -- or messages.
std::vector<Message> read_prompt(const json& j, const std::string& where, const char* key = "prompt") {
  require(j.contains(key), where, ": no \"", key, "\"");
  const json& prompt = j.at(key);
  if (prompt.is_string()) return {{"user", prompt.get<std::string>()}};
  require(prompt.is_array(), where, ": \"", key, "\" must be text or a list of messages");
  return read_messages(j, where, key);
}

// `prompt` continued by the completion under `key` (TRL's "completion"; an explicit prompt's "chosen"
// and "rejected"): text -- the assistant's answer -- or messages, the last the assistant's, any before
// it joining the prompt (the conversation is prompt + completion, as TRL concatenates them).
Conversation read_completion(const json& j, std::vector<Message> prompt, const char* key, const std::string& where) {
  require(j.contains(key), where, ": no \"", key, "\"");
  const json& completion = j.at(key);
  if (completion.is_string()) return {std::move(prompt), completion.get<std::string>()};
  require(completion.is_array(), where, ": \"", key, "\" must be text or a list of messages");
  for (Message& m : read_messages(j, where, key)) prompt.push_back(std::move(m));
  return split_response(std::move(prompt), where);
}

// Whether a chosen/rejected record gives its prompt apart -- TRL's explicit prompt, {"prompt", "chosen",
// "rejected"} with "chosen" text or starting with the assistant's message -- rather than inside each
// conversation (HuggingFaceH4/ultrafeedback_binarized's "prompt" beside whole conversations).
bool explicit_prompt(const json& j) {
  if (!j.contains("prompt")) return false;
  const json& chosen = j.at("chosen");
  return chosen.is_string() || (chosen.is_array() && !chosen.empty() && chosen.front().is_object() &&
                                chosen.front().contains("role") && chosen.front().at("role") == "assistant");
}

// The conversation under `key` of a record of `shape` that pairs its ground truth with another answer
// (SPIN data sets' "real" / "generated", "chosen" / "rejected", data.columns' response / generated): the
// whole conversation, or where the prompt stands apart (TRL's explicit prompt, the columns) the prompt
// continued by that completion.
Conversation read_answer(const json& j, DataShape shape, const char* key, const RecordColumns& columns,
                         const std::string& where) {
  if (shape == DataShape::Columns) return read_completion(j, read_prompt(j, where, columns.prompt.c_str()), key, where);
  if (shape == DataShape::ChosenRejected && explicit_prompt(j)) return read_completion(j, read_prompt(j, where), key, where);
  return read_chat(j, where, key);
}

// j[key] as text where the record has it, else "".
std::string optional_string(const json& j, const char* key, const std::string& where) {
  return j.contains(key) ? jsonl::string_field(j, key, where) : std::string();
}

// The prompt of an Alpaca record -- {"instruction", "input", "output"}, Dolly's "context" for "input",
// LLaMA-Factory's "system" and "history" ([[instruction, response], ...], earlier turns) --: the
// system message, the history's turns, then a user message of the instruction followed, where the
// input is not blank, by a newline and the input (LLaMA-Factory's join).
std::vector<Message> alpaca_prompt(const json& j, const std::string& where) {
  std::vector<Message> prompt;
  if (const std::string system = optional_string(j, "system", where); !blank(system)) prompt.push_back({"system", system});
  if (j.contains("history")) {
    const json& history = j.at("history");
    require(history.is_array(), where, ": \"history\" must be a list of [instruction, response] pairs");
    for (const json& turn : history) {
      require(turn.is_array() && turn.size() == 2 && turn[0].is_string() && turn[1].is_string(), where,
              ": every \"history\" entry must be an [instruction, response] pair of strings");
      prompt.push_back({"user", turn[0].get<std::string>()});
      prompt.push_back({"assistant", turn[1].get<std::string>()});
    }
  }
  std::string user = jsonl::string_field(j, "instruction", where);
  const char* input_key = j.contains("input") ? "input" : "context";
  if (const std::string input = optional_string(j, input_key, where); !blank(input)) user += "\n" + input;
  prompt.push_back({"user", std::move(user)});
  return prompt;
}

Conversation read_alpaca(const json& j, const std::string& where) {
  const char* output_key = j.contains("output") ? "output" : "response";
  require(j.contains(output_key), where, ": an instruction record needs its answer, \"output\" (Alpaca) or "
          "\"response\" (Dolly)");
  return {alpaca_prompt(j, where), jsonl::string_field(j, output_key, where)};
}

// A conversation turn's speaker as a message role: NeMo's User and Assistant, ShareGPT's (FastChat's,
// LLaMA-Factory's, Axolotl's) human, gpt and system -- "" for another.
std::string speaker_role(const std::string& from) {
  if (from == "User" || from == "human") return "user";
  if (from == "Assistant" || from == "gpt") return "assistant";
  if (from == "system") return "system";
  return "";
}

Conversation read_nemo_chat(const json& j, const std::string& where) {
  Conversation c;
  if (j.contains("system")) {
    const std::string system = jsonl::string_field(j, "system", where);
    if (!blank(system)) c.prompt.push_back({"system", system});
  }
  const json& turns = j.at("conversations");
  require(turns.is_array() && !turns.empty(), where, ": \"conversations\" must be a non-empty list");
  for (const json& t : turns) {
    require(t.is_object(), where, ": every turn must be an object with from and value");
    const std::string from = jsonl::string_field(t, "from", where);
    const std::string role = speaker_role(from);
    require(!role.empty(), where, ": unknown speaker \"", from,
            "\" (NeMo's User or Assistant, ShareGPT's human, gpt or system)");
    c.prompt.push_back({role, jsonl::string_field(t, "value", where)});
  }
  require(c.prompt.back().role == "assistant", where,
          ": the last turn must be the assistant's (Assistant, gpt: the ground-truth response)");
  c.response = c.prompt.back().content;
  c.prompt.pop_back();
  return c;
}

// The key holding a record's given generated response, if its shape has one.
const char* generated_key(DataShape shape, const RecordColumns& columns) {
  switch (shape) {
    case DataShape::SpinPairs:
    case DataShape::TokenIds: return "generated";
    case DataShape::ChosenRejected: return "rejected";
    case DataShape::Columns: return columns.generated.empty() ? nullptr : columns.generated.c_str();
    default: return nullptr;
  }
}

Example read_example(const json& j, DataShape shape, const std::string& where,
                     const Tokenizer* tokenizer, PromptTemplate prompt_template,
                     std::int64_t vocab_size, bool read_generated, const RecordColumns& columns) {
  Example e;
  const char* gen_key = read_generated ? generated_key(shape, columns) : nullptr;
  require(!read_generated || gen_key != nullptr, where, ": ", data_shape_name(shape),
          " records carry no generated response (spin.generations = data reads \"generated\" of SPIN data sets "
          "and token-id records, \"rejected\" of chosen/rejected records, data.columns' third)");
  require(!gen_key || j.contains(gen_key), where, ": no \"", gen_key,
          "\" response (spin.generations = data takes one from every record)");
  if (shape == DataShape::TokenIds) {
    e.prompt = jsonl::id_list(j, "prompt", where);
    e.response = jsonl::id_list(j, "response", where);
    if (gen_key) e.generated = jsonl::id_list(j, gen_key, where);
    require(!e.prompt.empty(), where, ": the prompt is empty");
    require(!e.response.empty(), where, ": the response is empty");
    require(!gen_key || !e.generated.empty(), where, ": the generated response is empty");
    for (const auto* ids : {&e.prompt, &e.response, &e.generated}) {
      for (std::int32_t id : *ids) {
        require(id < vocab_size, where, ": token id ", id, " is outside the vocabulary [0, ",
                vocab_size, ")");
      }
    }
    return e;
  }
  require(tokenizer != nullptr, where, ": text data needs the model's tokenizer");
  Conversation c;
  switch (shape) {
    case DataShape::TextPair:
      c.prompt = {{"user", jsonl::string_field(j, "prompt", where)}};
      c.response = jsonl::string_field(j, "response", where);
      break;
    case DataShape::Chat: c = read_chat(j, where); break;
    // The SPIN data sets' records (UCLA-AGI/SPIN_iter*): the ground truth under "real"; their
    // "generated" responses, another model's, are not read -- the reference generates its own.
    case DataShape::SpinPairs: c = read_answer(j, shape, "real", columns, where); break;
    // The SPIN code's generations and preference data sets: the ground truth (or preferred
    // answer) under "chosen" (with an explicit prompt, its completion), "rejected" not read.
    case DataShape::ChosenRejected: c = read_answer(j, shape, "chosen", columns, where); break;
    case DataShape::NemoChat: c = read_nemo_chat(j, where); break;
    case DataShape::PromptCompletion: c = read_completion(j, read_prompt(j, where), "completion", where); break;
    case DataShape::Alpaca: c = read_alpaca(j, where); break;
    case DataShape::Columns: c = read_answer(j, shape, columns.response.c_str(), columns, where); break;
    case DataShape::TokenIds: break;
  }
  require(!c.prompt.empty() && std::any_of(c.prompt.begin(), c.prompt.end(),
                                           [](const Message& m) { return !blank(m.content); }),
          where, ": the prompt is empty");
  require(!blank(c.response), where, ": the response is empty");
  e.prompt = render_prompt_at(c.prompt, prompt_template, *tokenizer, where);
  e.response = render_response(c.response, prompt_template, *tokenizer);
  if (gen_key) {
    const Conversation g = read_answer(j, shape, gen_key, columns, where);
    require(g.prompt == c.prompt, where, ": the \"", gen_key, "\" conversation's prompt differs from the ground truth's");
    require(!blank(g.response), where, ": the generated response is empty");
    e.generated = render_response(g.response, prompt_template, *tokenizer);
  }
  return e;
}

// Applies the limits; returns false when the example is dropped.
bool fit(Example& e, const LengthLimits& limits, DataReport& report) {
  // A given generated response is held to the response's limits too.
  const auto too_long = [&] {
    const auto p = static_cast<std::int64_t>(e.prompt.size());
    const auto r = static_cast<std::int64_t>(std::max(e.response.size(), e.generated.size()));
    return (limits.max_prompt > 0 && p > limits.max_prompt) ||
           (limits.max_response > 0 && r > limits.max_response) ||
           (limits.max_sequence > 0 && p + r > limits.max_sequence);
  };
  if (!too_long()) return true;
  if (limits.overlong == Overlong::Drop) {
    ++report.dropped;
    return false;
  }
  // Keep the end of the prompt (the question) and the start of the response.
  if (limits.max_prompt > 0 && static_cast<std::int64_t>(e.prompt.size()) > limits.max_prompt) {
    e.prompt.erase(e.prompt.begin(), e.prompt.end() - limits.max_prompt);
  }
  std::int64_t room = limits.max_response > 0 ? limits.max_response : static_cast<std::int64_t>(e.response.size());
  if (limits.max_sequence > 0) room = std::min(room, limits.max_sequence - static_cast<std::int64_t>(e.prompt.size()));
  if (room < 1) {
    ++report.dropped;
    return false;
  }
  for (auto* response : {&e.response, &e.generated}) {
    if (static_cast<std::int64_t>(response->size()) > room) response->resize(static_cast<std::size_t>(room));
  }
  ++report.truncated;
  return true;
}

}  // namespace

std::vector<std::string> data_files(const std::string& path) {
  std::vector<std::string> files;
  for (std::size_t at = 0; at <= path.size();) {
    const std::size_t comma = std::min(path.find(',', at), path.size());
    const std::string entry = path.substr(at, comma - at);
    require(!entry.empty(), "\"", path, "\": an empty file name in the list");
    if (entry.find_first_of("*?[") == std::string::npos) {
      files.push_back(entry);
    } else {  // a pattern, as the Hub's shards are named (train_sft-*.parquet): its files in name order
      glob_t matches{};
      const int status = ::glob(entry.c_str(), GLOB_ERR, nullptr, &matches);
      for (std::size_t i = 0; status == 0 && i < matches.gl_pathc; ++i) files.emplace_back(matches.gl_pathv[i]);
      ::globfree(&matches);
      require(status == 0, entry, ": ", status == GLOB_NOMATCH ? "no file matches the pattern" : "cannot be searched");
    }
    at = comma + 1;
  }
  return files;
}

std::string LoadedExamples::location(const Example& e) const {
  return cat(files.at(static_cast<std::size_t>(e.file)), ":", e.line);
}

const char* data_shape_name(DataShape s) {
  switch (s) {
    case DataShape::TextPair: return "prompt/response text";
    case DataShape::Chat: return "chat messages";
    case DataShape::NemoChat: return "conversations (NeMo, ShareGPT)";
    case DataShape::SpinPairs: return "SPIN real/generated messages";
    case DataShape::ChosenRejected: return "chosen/rejected";
    case DataShape::PromptCompletion: return "prompt/completion (TRL)";
    case DataShape::Alpaca: return "instruction/input/output (Alpaca, Dolly)";
    case DataShape::Columns: return "the columns given";
    case DataShape::TokenIds: return "pre-tokenized ids";
  }
  return "?";
}

std::string DataReport::summary(const std::string& path) const {
  return cat(path, ": ", records, " records (", data_shape_name(shape), "); ", truncated,
             " truncated, ", dropped, " dropped as too long, ", skipped, " malformed records skipped");
}

int default_workers() { return usable_cpus(kMaxWorkers); }

RecordColumns RecordColumns::parse(const std::string& text, const std::string& option, bool with_response) {
  RecordColumns c;
  if (text.empty()) return c;
  std::vector<std::string> keys;
  for (std::size_t at = 0; at <= text.size();) {
    const std::size_t comma = std::min(text.find(',', at), text.size());
    keys.push_back(text.substr(at, comma - at));
    at = comma + 1;
  }
  require(keys.size() >= (with_response ? 2u : 1u) && keys.size() <= 3 &&
              std::none_of(keys.begin(), keys.end(), [](const std::string& k) { return k.empty(); }),
          option, " must be ", with_response ? "" : "PROMPT, ",
          "PROMPT,RESPONSE or PROMPT,RESPONSE,GENERATED (the records' keys, e.g. question,answer), got \"", text, "\"");
  c.prompt = keys[0];
  if (keys.size() >= 2) c.response = keys[1];
  if (keys.size() == 3) c.generated = keys[2];
  return c;
}

LoadedExamples load_examples(const std::string& path, const Tokenizer* tokenizer,
                             PromptTemplate prompt_template, const LengthLimits& limits,
                             std::int64_t vocab_size, const ExampleOptions& options) {
  const RecordColumns& columns = options.columns;
  const bool skip_bad_lines = options.skip_bad_lines, read_generated = options.read_generated;
  int workers = options.workers;
  require(workers >= 0, "data workers must be >= 0 (0: one a CPU this process may run on), got ", workers);
  if (workers == 0) workers = default_workers();
  LoadedExamples out;
  bool shape_known = false;
  std::int32_t file_index = 0;
  // Records are read and their shapes checked in order; a batch of them is then tokenized by the
  // workers, and the results taken in order -- the same examples, counts and first error as one
  // record at a time, whatever the number of workers.
  struct Pending {
    json record;
    DataShape shape = DataShape::TextPair;
    std::string where;
    std::int64_t line = 0;
    std::int32_t file = 0;
    Example example;
    std::exception_ptr failure;  // reading or tokenizing it failed
  };
  std::vector<Pending> batch;
  const auto take_batch = [&] {
    for_each_index(batch.size(), workers, [&](std::size_t i) {
      Pending& p = batch[i];
      if (p.failure) return;
      try {
        p.example =
            read_example(p.record, p.shape, p.where, tokenizer, prompt_template, vocab_size, read_generated, columns);
      } catch (...) {
        p.failure = std::current_exception();
      }
    });
    for (Pending& p : batch) {
      if (p.failure) {
        try {
          std::rethrow_exception(p.failure);
        } catch (const Error&) {
          if (!skip_bad_lines) throw;
          ++out.report.skipped;
        }
        continue;
      }
      p.example.line = p.line;
      p.example.file = p.file;
      ++out.report.records;
      if (fit(p.example, limits, out.report)) out.examples.push_back(std::move(p.example));
    }
    batch.clear();
  };
  const auto read_record = [&](Record& record) {
    Pending& p = batch.emplace_back();
    p.where = record.where();
    p.line = record.line();
    p.file = file_index;
    try {
      p.record = record.take();
      p.shape = columns.given() ? DataShape::Columns : detect_shape(p.record, p.where);
      if (!shape_known) {
        out.report.shape = p.shape;
        shape_known = true;
      }
      require(p.shape == out.report.shape, p.where, ": a ", data_shape_name(p.shape), " record among ",
              data_shape_name(out.report.shape), " records");
    } catch (const Error&) {
      p.failure = std::current_exception();
    }
    // An error not skipped ends the reading: the batch so far throws it, or an earlier record's.
    if (batch.size() == kExampleBatch || (p.failure && !skip_bad_lines)) take_batch();
  };
  out.files = data_files(path);
  std::vector<std::string> keys = kExampleKeys;
  if (columns.given()) keys = {columns.prompt, columns.response};
  if (!columns.generated.empty()) keys.push_back(columns.generated);
  for (const std::string& file : out.files) {
    for_each_record(file, keys, read_record);
    ++file_index;
  }
  take_batch();
  require(!out.examples.empty(), path, ": no usable examples (", out.report.records, " read, ",
          out.report.dropped, " dropped, ", out.report.skipped, " skipped)");
  return out;
}

bool holds_text(const std::string& path, const RecordColumns& columns) {
  return columns.given() || text_shape(first_record(data_files(path).front(), kExampleKeys)).has_value();
}

LoadedPrompts load_prompts(const std::string& path, const Tokenizer* tokenizer, PromptTemplate prompt_template,
                           const RecordColumns& columns) {
  LoadedPrompts out;
  std::vector<std::vector<std::int32_t>>& prompts = out.prompts;
  const auto read_record = [&](const Record& record) {
    const std::string& where = record.where();
    const json& j = record.object();
    out.where.push_back(where);
    for (const char* key : {"prompt", "tokens"}) {
      if (columns.given()) break;
      // Token ids, not TRL's conversational prompt (a list of messages).
      if (j.contains(key) && j.at(key).is_array() && (j.at(key).empty() || !j.at(key).front().is_object())) {
        prompts.push_back(jsonl::id_list(j, key, where));
        require(!prompts.back().empty(), where, ": the prompt is empty");
        return;
      }
    }
    std::vector<Message> messages;
    if (columns.given()) {
      messages = read_prompt(j, where, columns.prompt.c_str());
    } else if (j.contains("messages")) {
      messages = read_messages(j, where);
    } else if (j.contains("instruction")) {
      messages = alpaca_prompt(j, where);
    } else {
      require(j.contains("prompt"), where, ": expected {\"prompt\": [token ids]}, {\"prompt\": \"text\"}, "
              "{\"prompt\": [messages]}, {\"messages\": [...]} or {\"instruction\", \"input\"}");
      messages = read_prompt(j, where);
    }
    require(std::any_of(messages.begin(), messages.end(), [](const Message& m) { return !blank(m.content); }),
            where, ": the prompt is empty");
    require(tokenizer != nullptr, where, ": a text prompt needs the model's tokenizer");
    prompts.push_back(render_prompt_at(messages, prompt_template, *tokenizer, where));
  };
  const std::vector<std::string> keys = columns.given() ? std::vector<std::string>{columns.prompt} : kPromptKeys;
  for (const std::string& file : data_files(path)) for_each_record(file, keys, read_record);
  return out;
}

}  // namespace spin::data
