// Prompt templates: how a conversation becomes the token ids that precede the response.
//   chat  (default; the Zephyr layout the SPIN paper's models use)
//         BOS "<|system|>\n{content}" EOS "\n" "<|user|>\n{content}" EOS "\n" ... "<|assistant|>\n"
//   plain BOS "{content}" with several messages joined by "\n"
// Special tokens are inserted as ids, never as text, so a tokenizer cannot split them.
// The response is its text's ids followed by EOS.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/tokenizer.h"

namespace spin::data {

struct Message {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

enum class PromptTemplate { Chat, Plain };
PromptTemplate parse_prompt_template(const std::string& name);  // throws naming the choices

std::vector<std::int32_t> render_prompt(const std::vector<Message>& messages,
                                        PromptTemplate prompt_template, const Tokenizer& tokenizer);
std::vector<std::int32_t> render_response(const std::string& text, const Tokenizer& tokenizer);

}  // namespace spin::data
