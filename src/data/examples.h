// Supervised examples -- a prompt and its ground-truth response, both as token ids -- from
// JSONL files in any of these shapes, detected per file from its first record:
//   {"prompt": "...", "response": "..."}                              text pair
//   {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}   chat; the
//       last assistant turn is the response, everything before it the prompt
//   {"system": "...", "conversations": [{"from": "User"|"Assistant", "value": "..."}, ...]}
//       NeMo's chat format, read the same way
//   {"real": [messages], "generated": [messages]}                      the SPIN data sets'
//       (UCLA-AGI/SPIN_iter*): "real" read as chat, "generated" ignored (the reference answers)
//   {"chosen": [messages], "rejected": [messages]}                    the SPIN code's
//       generations and preference data sets: "chosen" read as chat, "rejected" ignored
//   {"prompt": [ids], "response": [ids]}                              pre-tokenized
// A template turns the prompt messages into ids (prompt_template.h); the response is encoded
// and ends with EOS. The same ids serve generation and training. Over-long examples are
// truncated or dropped as asked and counted; malformed lines are errors naming file and line,
// or, with skip_bad_lines, counted.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/prompt_template.h"
#include "data/tokenizer.h"

namespace spin::data {

enum class DataShape { TextPair, Chat, NemoChat, SpinPairs, ChosenRejected, TokenIds };
const char* data_shape_name(DataShape s);

enum class Overlong { Drop, Truncate };

struct LengthLimits {
  std::int64_t max_prompt = 0;    // tokens; 0 = no limit
  std::int64_t max_response = 0;  // tokens; 0 = no limit
  std::int64_t max_sequence = 0;  // prompt + response tokens; 0 = no limit
  Overlong overlong = Overlong::Drop;
};

struct Example {
  std::vector<std::int32_t> prompt;
  std::vector<std::int32_t> response;
  std::int64_t line = 0;  // 1-based line in the file
};

struct DataReport {
  DataShape shape = DataShape::TextPair;
  std::int64_t records = 0;    // lines read as examples
  std::int64_t truncated = 0;  // kept, shortened
  std::int64_t dropped = 0;    // too long (or empty after truncation)
  std::int64_t skipped = 0;    // malformed, with skip_bad_lines
  std::string summary(const std::string& path) const;  // one line for the start-up log
};

struct LoadedExamples {
  std::vector<Example> examples;
  DataReport report;
};

// `tokenizer` may be null for pre-tokenized files. `vocab_size` bounds pre-tokenized ids.
LoadedExamples load_examples(const std::string& path, const Tokenizer* tokenizer,
                             PromptTemplate prompt_template, const LengthLimits& limits,
                             std::int64_t vocab_size, bool skip_bad_lines = false);

// Whether the JSONL file's first record is text (a text pair, chat messages, NeMo
// conversations or a SPIN data set's record) rather than token ids.
bool holds_text(const std::string& path);

// Prompts to generate from (spin generate), one per line, each {"prompt": [ids]} (or
// {"tokens": [ids]}) as it is, or
// text rendered by the template as the prompt of a conversation: {"prompt": "..."} (one user
// message) or {"messages": [...]} (every message). Text needs `tokenizer`; errors name
// file:line.
std::vector<std::vector<std::int32_t>> load_prompts(const std::string& path, const Tokenizer* tokenizer,
                                                    PromptTemplate prompt_template);

}  // namespace spin::data
