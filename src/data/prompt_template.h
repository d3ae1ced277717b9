// Prompt templates: how a conversation becomes the token ids that precede the response.
//   auto  (default) llama3 when the tokenizer has Llama 3's chat tokens, chat otherwise
//   chat  (the Zephyr layout the SPIN paper's models use)
//         BOS "<|system|>\n{content}" EOS "\n" "<|user|>\n{content}" EOS "\n" ... "<|assistant|>\n"
//   plain BOS "{content}" with several messages joined by "\n"
//   llama3 (Llama-3 Instruct's chat template) BOS, then per message
//         <|start_header_id|> "{role}" <|end_header_id|> "\n\n{content, trimmed}" <|eot_id|>,
//         then <|start_header_id|> "assistant" <|end_header_id|> "\n\n"
// Special tokens are inserted as ids, never as text, so a tokenizer cannot split them.
// The response is its text's ids followed by EOS (llama3: its trimmed text's, then <|eot_id|>,
// which ends an assistant turn).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/tokenizer.h"

namespace spin::data {

struct Message {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

enum class PromptTemplate { Chat, Plain, Llama3 };
// The template named `name` (auto, chat, plain or llama3; throws naming the choices), "auto"
// resolved for `tokenizer` (null: chat).
PromptTemplate choose_prompt_template(const std::string& name, const Tokenizer* tokenizer);
const char* prompt_template_name(PromptTemplate t);

std::vector<std::int32_t> render_prompt(const std::vector<Message>& messages,
                                        PromptTemplate prompt_template, const Tokenizer& tokenizer);
std::vector<std::int32_t> render_response(const std::string& text, PromptTemplate prompt_template,
                                          const Tokenizer& tokenizer);
// The token that ends a response under the template (EOS, llama3's <|eot_id|>), if any:
// generation must stop at it too.
std::optional<std::int32_t> response_end(PromptTemplate prompt_template, const Tokenizer& tokenizer);

}  // namespace spin::data
