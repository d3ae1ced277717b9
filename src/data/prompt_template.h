// Prompt templates: how a conversation becomes the token ids that precede the response.
//   auto  (default) tulu when the tokenizer's chat template writes Tulu's turns (OLMo 2 Instruct,
//         Tulu 3), llama3.1 when the tokenizer has Llama 3.1's chat tokens (<|eom_id|> too),
//         llama3 when it has Llama 3's, phi4 when it has ChatML's and <|im_sep|> (Phi-4), qwen3
//         when it has ChatML's and <think> </think> (Qwen3),
//         qwen2.5 when it has ChatML's and its chat template writes Qwen2.5's default system
//         message, chatml when it has ChatML's (Qwen2), gemma3 when it has <start_of_turn>,
//         <end_of_turn> and <start_of_image> (Gemma 3's), gemma when it has the first two,
//         mistral-v7 when it has [INST], [/INST], [SYSTEM_PROMPT] and [/SYSTEM_PROMPT] and is a
//         tekken.json of version v7 or later or has a chat template that writes [SYSTEM_PROMPT],
//         mistral-v3 when it has [INST] and [/INST], granite4, granite3.1 or granite3.0 when its chat
//         template writes Granite's <|start_of_role|> turns (below), smollm3 when its chat template
//         writes SmolLM3's "Reasoning Mode" (before qwen3), deepseek-r1, deepseek-v3 or deepseek-v3.1 when
//         its chat template is R1's, V3's or V3.1's (below), deepseek-v2 for V2's (below), kimi for Moonshot
//         AI's chat tokens (below), glm4.5 for GLM-4.5's and GLM-4.6's chat template (below),
//         olmo3.1 or olmo3 for Olmo 3.1 Instruct's or Olmo 3 Instruct's chat template (below),
//         chat otherwise; chat templates spin does not write (OLMo 3 Think's, Phi-3's SentencePiece one, other
//         Granite, DeepSeek, Moonshot and GLM ones) are refused
//   chat  (the Zephyr layout the SPIN paper's models use)
//         BOS "<|system|>\n{content}" EOS "\n" "<|user|>\n{content}" EOS "\n" ... "<|assistant|>\n"
//   plain BOS "{content}" with several messages joined by "\n"
//   llama3 (Llama-3 Instruct's chat template) BOS, then per message
//         <|start_header_id|> "{role}" <|end_header_id|> "\n\n{content, trimmed}" <|eot_id|>,
//         then <|start_header_id|> "assistant" <|end_header_id|> "\n\n"
//   llama3.1 (Llama 3.1 / 3.2 Instruct's) llama3 with its system block always first: "Cutting
//         Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n" and the conversation's
//         system message (trimmed), as its template renders it without tools (the date its
//         default: fixed, so that a data set tokenizes the same any day)
//   chatml (Qwen2 / Qwen2.5 Instruct's, without BOS) per message
//         <|im_start|> "{role}\n{content}" <|im_end|> "\n", then <|im_start|> "assistant\n"
//         (renders the messages given)
//   qwen2.5 chatml with Qwen2.5-Instruct's default system message ("You are Qwen, created by
//         Alibaba Cloud. You are a helpful assistant.") in front of a conversation without one,
//         as its own chat template does
//   qwen3 chatml in Qwen3's non-thinking mode: the generation prompt followed by an empty think
//         block, "<think>\n\n</think>\n\n" (its template with enable_thinking=False)
//   gemma (Gemma Instruct's) BOS, then per message <start_of_turn> "{role}\n{content, trimmed}"
//         <end_of_turn> "\n" with the assistant's role written "model", then <start_of_turn>
//         "model\n"; as its template, no system message and the roles alternating from the user's
//   gemma3 (Gemma 3 Instruct's) gemma with a first system message written, untrimmed and followed
//         by "\n\n", before the first user message's (trimmed) text
//   llama2 (Llama 2 chat, Meta's chat_completion = its Hugging Face template) per user turn BOS
//         "[INST] {content, trimmed} [/INST]", per assistant turn " {content, trimmed} " EOS; a
//         first system message goes into the first user turn as "<<SYS>>\n{system}\n<</SYS>>\n\n"
//   mistral (Mistral 7B Instruct v0.1 / v0.2, mistral-common's v1 format) BOS, per user turn
//         "[INST] {content} [/INST]", per assistant turn "{content}" EOS, each encoded on its own
//         (the assistant's text with its SentencePiece dummy prefix, as mistral-common encodes it:
//         transformers' Jinja templates for these models glue it to "[/INST]"); a first system
//         message goes into the first user turn as "{system}\n\n"; no auto choice (their
//         tokenizers have no chat tokens): data.template names them
//   mistral-v3 (Mistral 7B Instruct v0.3, mistral-common's v3 format) BOS, per user turn [INST]
//         "{content}" [/INST] with the markers as their tokens, per assistant turn "{content}"
//         (trailing spaces removed) EOS; a first system message goes into the LAST user turn as
//         "{system}\n\n"; auto picks it for a tokenizer with [INST] and [/INST] tokens (Mistral
//         NeMo's Tekken, v3 too: its contents without a dummy prefix, as a byte-level BPE encodes)
//   mistral-v7 (Mistral Small 3 / 3.1 / 3.2, Magistral, Devstral: mistral-common's v7 format, which
//         v11, v13 and v15 keep for conversations without tools) mistral-v3 with a first system
//         message as a turn of its own right after BOS: [SYSTEM_PROMPT] "{system}" [/SYSTEM_PROMPT]
//   phi4 (Phi-4's chat template) per system or user message <|im_start|> "{role}" <|im_sep|>
//         "{content}" <|im_end|>, each user one followed by <|im_start|> "assistant" <|im_sep|>
//         (its template writes the generation prompt after every user turn), per assistant
//         message "{content}" <|im_end|>; no BOS, nothing trimmed
//   phi4-mini (Phi-4-mini's chat template, Phi-3's tokens without Phi-3's newlines) per message
//         <|{role}|> "{content}" <|end|>, then <|assistant|>; no BOS; the whitespace a marker's
//         lstrip / rstrip takes from the content beside it dropped, as tokenizing the rendered
//         text does; auto picks it for a byte-level BPE with <|system|>, <|user|>,
//         <|assistant|> and <|end|> (Phi-3's SentencePiece tokenizers with those are refused)
//   tulu  (open-instruct's Tulu format: OLMo 2 Instruct's, Tulu 3's, the first OLMo Instruct's) per message
//         "<|{role}|>\n{content}\n", an assistant's "<|assistant|>\n{content}" EOS "\n", then "<|assistant|>\n";
//         BOS first when the tokenizer's chat template writes bos_token (OLMo 2's does, Tulu 3's does not),
//         EOS first when it writes eos_token before its turns (the first OLMo's), a system message dropped
//         when it has no system turn (OLMo-7B-Instruct's drops it); BOS and
//         EOS the tokenizer files' own (Tokenizer::template_bos_id), as the template writes them; the
//         markers are text, the turns between EOS ids encoded as one string, as the rendered text
//         is; nothing trimmed. auto picks it for a chat template that writes a user turn so
//         ('<|user|>\n' + message['content'] + '\n', or the first OLMo's '<|user|>\n' +
//         message['content'] }} and a newline), before looking at the tokens (Tulu 3's are Llama 3's)
//   cohere (Command-R's and Aya's default chat template) BOS, a first system message as
//         <|START_OF_TURN_TOKEN|> <|SYSTEM_TOKEN|> "{content}" <|END_OF_TURN_TOKEN|> (untrimmed), then
//         per message <|START_OF_TURN_TOKEN|> <|USER_TOKEN|> or <|CHATBOT_TOKEN|> "{content, stripped}"
//         <|END_OF_TURN_TOKEN|>, the roles alternating from the user's, then <|START_OF_TURN_TOKEN|>
//         <|CHATBOT_TOKEN|>; auto picks it for a tokenizer with those tokens (refusing a chat template
//         with a system preamble or <|START_RESPONSE|>: Command R7B's and later ones)
//   granite3.0 (Granite 3.0 Instruct's) per message <|start_of_role|> "{role}" <|end_of_role|> "{content}"
//         <|end_of_text|> "\n", then <|start_of_role|> "assistant" <|end_of_role|>; no BOS, nothing trimmed
//   granite3.1 (Granite 3.1 / 3.2 / 3.3 Instruct's, without tools, documents or thinking) granite3.0 after a
//         system turn that is the conversation's first system message or, without one, the template's
//         default: "Knowledge Cutoff Date: April 2024.\nToday's Date: April 16, 2025.\nYou are Granite,
//         developed by IBM. You are a helpful AI assistant." -- its template writes the day it runs
//         (strftime_now), spin a fixed one, so that a data set tokenizes the same any day
//   granite4 (Granite 4.0's) granite3.1 with 4.0's undated default: "You are a helpful assistant. Please
//         ensure responses are professional, accurate, and safe."; auto picks each Granite template by its
//         chat template's default system message (3.0's: its user turn), refusing another
//   smollm3 (SmolLM3's template with enable_thinking=False) ChatML without BOS: first a system turn
//         "## Metadata\n\nKnowledge Cutoff Date: June 2025\nToday Date: 08 July 2025\nReasoning Mode:
//         /no_think\n\n## Custom Instructions\n\n{instructions}\n\n## Tools\n\n### XML Tools\n\nNone\n\n
//         ### Python Tools\n\nNone\n\n" (the day fixed, as for granite3.1; the instructions the system
//         message's without its /no_think and trailing whitespace, or "You are a helpful AI assistant
//         named SmolLM, trained by Hugging Face."; with /system_override the instructions alone; a
//         system message with /think refused), then user turns as chatml's, assistant turns
//         "assistant\n<think>\n\n</think>\n{content without leading newlines}", later system
//         messages dropped, then <|im_start|> "assistant\n<think>\n\n</think>\n"
//   deepseek-v3 (DeepSeek-V3's chat template, without tools) <｜begin▁of▁sentence｜>, every system message
//         joined by "\n\n", then per user message <｜User｜> "{content}", per assistant message <｜Assistant｜>
//         "{content}" <｜end▁of▁sentence｜>, then <｜Assistant｜>; nothing trimmed. auto picks it for a chat
//         template with <｜Assistant｜> that joins its system messages so and writes no think block
//   deepseek-r1 (DeepSeek-R1's and its distilled Qwen and Llama models' chat template, without tools)
//         deepseek-v3 with only the last system message, each earlier assistant message's text after its
//         last </think> (its answer, not its reasoning), and the generation prompt <｜Assistant｜> "<think>\n":
//         the response is what the model writes after it (its reasoning, </think>, its answer); auto picks
//         it for a chat template writing that generation prompt and cutting the history at </think>
//   deepseek-v3.1 (DeepSeek-V3.1's chat template in its default, non-thinking mode) deepseek-v3's BOS and
//         system text, per user message <｜User｜> "{content}", per assistant message that follows one
//         <｜Assistant｜> </think> (the added token) and its text after its first </think>, then
//         <｜end▁of▁sentence｜>; an assistant message after another with its text alone; then, after a user
//         message, <｜Assistant｜> </think>: the response is the answer, its text after its first
//         </think>. auto picks it for a chat template writing that thinking switch
//   deepseek-v2 (DeepSeek-V2-Chat's, V2-Lite-Chat's and DeepSeek LLM 7B / 67B Chat's chat template)
//         <｜begin▁of▁sentence｜>, then per message a user's "User: {content}\n\n", a system's "{content}\n\n",
//         an assistant's "Assistant: {content}" <｜end▁of▁sentence｜>, in their order; then "Assistant:" -- the
//         response's text after the space its template writes (the response is " {content}"); nothing trimmed,
//         the text between the markers encoded as one string. auto picks it for a tokenizer with
//         <｜begin▁of▁sentence｜> whose chat template is that one
//   kimi  (Moonshot AI's: Moonlight-16B-A3B-Instruct's and Kimi K2's chat templates, without tools) no BOS;
//         when the conversation does not open with a system message, the template's default one first
//         (the literal text of its <|im_system|>system<|im_middle|>...<|im_end|> turn: Moonlight's "You are a
//         helpful assistant", K2's "You are Kimi, an AI assistant created by Moonshot AI."); per message
//         <|im_system|>, <|im_user|> or <|im_assistant|> by its role, "{role}" <|im_middle|> "{content}"
//         <|im_end|>; then <|im_assistant|> "assistant" <|im_middle|>; nothing trimmed. auto picks it for a
//         tokenizer with those tokens whose chat template writes that generation prompt and a literal
//         default system message, and no <think> (K2-Thinking's is refused)
//   glm4.5 (GLM-4.5's, GLM-4.5-Air's and GLM-4.6's chat template with thinking off, without tools) no BOS of the
//         tokenizer's: "[gMASK]<sop>", then per message a system's "<|system|>\n{content}", a user's
//         "<|user|>\n{content}/nothink" ("/nothink" unless the text ends with it), an assistant's
//         "<|assistant|>\n<think></think>" and, where its answer -- its text after its last </think>, less the
//         line breaks that open it, stripped -- is not empty, "\n{answer}"; then "<|assistant|>\n<think></think>".
//         The conversation is one text encoded at once (its markers the tokenizer's added tokens), as
//         apply_chat_template encodes it. The response is "\n{text stripped}" (or nothing), then <|user|>, which
//         ends an answer: GLM's turns have no end marker, and its generation config stops at <|user|>. auto
//         picks it for a tokenizer with [gMASK], <sop>, <|user|> and <|assistant|> whose chat template writes
//         that generation prompt where thinking is off (GLM-4-0414's and earlier GLM's are refused)
//   alpaca (LLaMA-Factory's alpaca template, for base models; never auto's) no BOS; the first system message, as it
//         is, or Stanford Alpaca's preamble "Below is an instruction that describes a task. Write a response that
//         appropriately completes the request.\n\n"; then per user message "### Instruction:\n{content}\n\n###
//         Response:\n", per assistant message "{content}" EOS "\n\n" (later system messages left out); nothing
//         trimmed. The response is its text, then EOS (LLaMA-Factory also trains the "\n\n" after it, which
//         opens the next turn: spin's responses end at EOS, where generation stops)
//   olmo3.1 (Olmo 3.1 Instruct's chat template, without tools) ChatML without BOS: where no message is a system one,
//         first <|im_start|> "system\nYou are Olmo, a helpful AI assistant built by Ai2. Your date cutoff is December
//         2024, and your model weights are available at https://huggingface.co/allenai. You do not currently have
//         access to any functions. <functions></functions>" <|im_end|> "\n"; then per message (a system one where it
//         stands) <|im_start|> "{role}\n{content}" <|im_end|> "\n"; then <|im_start|> "assistant\n". The response
//         is its text, then the tokenizer's EOS (<|endoftext|>), with which the template ends the last message.
//         auto picks it for a chat template with ChatML's markers, that default and those turns -- a system
//         message as given, the last message ended by eos_token --, and no <think> (Think models' are refused)
//   olmo3 (Olmo 3 Instruct's) olmo3.1 with 3.0's default system message: "You are a helpful function-calling AI
//         assistant. You do not currently have access to any functions. <functions></functions>"
// Special tokens are inserted as ids, never as text, so a tokenizer cannot split them (glm4.5's markers are
// text that the tokenizer matches as its added tokens, as apply_chat_template's encoding does; each checked
// to be one).
// The response is its text's ids followed by EOS (llama3: its trimmed text's, then <|eot_id|>,
// which ends an assistant turn; chatml: <|im_end|>, without the "\n" that separates turns, at
// which generation stops too; phi4: <|im_end|>; phi4-mini: <|end|>; gemma, gemma3: its trimmed text's, then
// <end_of_turn>; llama2: the ids of its trimmed text and a space; cohere: its stripped text's, then
// <|END_OF_TURN_TOKEN|>; granite*: its text's, then <|end_of_text|>; smollm3: its text's without leading
// newlines, then <|im_end|>; deepseek-*: its text's (deepseek-v2: after a space), then <｜end▁of▁sentence｜>; kimi: its
// text's, then <|im_end|>; glm4.5: above; olmo3, olmo3.1: its text's, then EOS).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "data/tokenizer.h"

namespace spin::data {

struct Message {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
  bool operator==(const Message&) const = default;
};

enum class PromptTemplate {
  Chat,
  Plain,
  Llama3,
  Llama31,
  ChatMl,
  Qwen25,
  Qwen3,
  Gemma,
  Gemma3,
  Llama2,
  Mistral,
  MistralV3,
  MistralV7,
  Phi4,
  Phi4Mini,
  Tulu,
  Cohere,
  Granite30,
  Granite31,
  Granite4,
  SmolLm3,
  DeepSeekV3,
  DeepSeekR1,
  DeepSeekV31,
  DeepSeekV2,
  Kimi,
  Glm45,
  Alpaca,
  Olmo3,
  Olmo31
};
// The template named `name` (auto, chat, plain, llama3, llama3.1, chatml, qwen2.5, qwen3, gemma,
// gemma3, llama2, mistral, mistral-v3, mistral-v7, phi4, phi4-mini, tulu, cohere, granite3.0, granite3.1,
// granite4, smollm3, deepseek-v3, deepseek-r1, deepseek-v3.1, deepseek-v2, kimi, glm4.5, alpaca, olmo3 or olmo3.1;
// throws naming the
// choices), "auto"
// resolved for `tokenizer` (null: chat).
PromptTemplate choose_prompt_template(const std::string& name, const Tokenizer* tokenizer);
const char* prompt_template_name(PromptTemplate t);
// The choices, for the commands' help.
inline constexpr const char* kPromptTemplateChoices =
    "auto (tulu for a chat template writing Tulu's turns, llama3.1, llama3, phi4, phi4-mini, qwen3, chatml, gemma3, "
    "gemma, mistral-v7, mistral-v3, cohere, granite*, deepseek-*, kimi, glm4.5 or olmo3* for a tokenizer with their "
    "chat tokens or template, else "
    "chat), chat, plain, llama3, llama3.1 (with Llama 3.1's system block), chatml, qwen2.5 (chatml with Qwen2.5's "
    "default system message), qwen3 (chatml, thinking off), gemma, gemma3 (gemma with a system message), llama2 "
    "(Llama 2 chat), mistral (Mistral 7B Instruct v0.1 / v0.2), mistral-v3 (v0.3, Mistral NeMo), mistral-v7 "
    "(Mistral Small 3 and later), phi4 (Phi-4), phi4-mini (Phi-4-mini), tulu (OLMo 2 Instruct, Tulu 3), cohere "
    "(Command-R, Aya), granite3.0 (Granite 3.0), granite3.1 (Granite 3.1-3.3, their dated default system message on "
    "a fixed day), granite4 (Granite 4.0), smollm3 (SmolLM3, thinking off), deepseek-v3 (DeepSeek-V3), "
    "deepseek-r1 (DeepSeek-R1 and its distilled models: the response after R1's <think>), deepseek-v3.1 "
    "(DeepSeek-V3.1, thinking off), deepseek-v2 (DeepSeek-V2 "
    "Chat, DeepSeek LLM Chat), kimi (Moonlight, Kimi K2), glm4.5 (GLM-4.5, GLM-4.6, thinking off), alpaca "
    "(LLaMA-Factory's: Stanford Alpaca's preamble, ### Instruction: / ### Response:, for base models), olmo3 (Olmo 3 "
    "Instruct) or olmo3.1 (Olmo 3.1 Instruct)";

std::vector<std::int32_t> render_prompt(const std::vector<Message>& messages,
                                        PromptTemplate prompt_template, const Tokenizer& tokenizer);
std::vector<std::int32_t> render_response(const std::string& text, PromptTemplate prompt_template,
                                          const Tokenizer& tokenizer);
// A response's text from its ids (decode()'s, special tokens left out) less what render_response
// writes around the text -- the token that ends it (response_end, or EOS) where the ids end with it,
// deepseek-v2's space before it --, so that the text given back to
// render_response gives the same ids wherever the tokenizer round-trips: the text spin generate and
// spin.save_generations write beside a response's ids.
std::string response_text(std::span<const std::int32_t> ids, PromptTemplate prompt_template,
                          const Tokenizer& tokenizer);
// The token that ends a response under the template (EOS, llama3's and llama3.1's <|eot_id|>, chatml's,
// qwen2.5's and qwen3's <|im_end|>, gemma's and gemma3's <end_of_turn>, tulu's the tokenizer files' own
// EOS, which its chat template writes), if any:
// generation must stop at it too.
std::optional<std::int32_t> response_end(PromptTemplate prompt_template, const Tokenizer& tokenizer);

}  // namespace spin::data
