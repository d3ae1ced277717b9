#include "data/prompt_template.h"

#include <algorithm>
#include <optional>
#include <string>

#include "core/error.h"
#include "data/prompt_template_detail.h"
#include "data/unicode_classes.h"

namespace spin::data {

namespace {
void append(std::vector<std::int32_t>& ids, const std::vector<std::int32_t>& more) {
  ids.insert(ids.end(), more.begin(), more.end());
}

// A special token the template needs, by its text.
std::int32_t special(const Tokenizer& t, PromptTemplate p, const std::string& token) {
  const std::optional<std::int32_t> id = t.token_id(token);
  require(id.has_value(), "the ", prompt_template_name(p), " prompt template needs the token ", token,
          ", which the model's tokenizer lacks");
  return *id;
}

// Granite 3.1-3.3's default system message around the day their template runs (strftime_now('%B %d,
// %Y')) -- spin writes one fixed day, Granite 3.3's release, so that a data set tokenizes the same any
// day (and a resumed run reads what the first run read).
constexpr const char* kGranite31SystemBefore = "Knowledge Cutoff Date: April 2024.\nToday's Date: ";
constexpr const char* kGranite31Date = "April 16, 2025";
constexpr const char* kGranite31SystemAfter = ".\nYou are Granite, developed by IBM. You are a helpful AI assistant.";

// SmolLM3's system block in its non-thinking mode, around the day its template runs (strftime_now('%d %B %Y'))
// -- one fixed day here, SmolLM3's release, as for granite3.1 -- and its custom instructions (the system
// message's, or the default).
constexpr const char* kSmolLm3Date = "08 July 2025";
constexpr const char* kSmolLm3Default = "You are a helpful AI assistant named SmolLM, trained by Hugging Face.";
// What SmolLM3's assistant turns and generation prompt open with in the non-thinking mode.
constexpr const char* kSmolLm3Reply = "assistant\n<think>\n\n</think>\n";

// Stanford Alpaca's preamble: LLaMA-Factory's alpaca template's default system message.
constexpr const char* kAlpacaSystem =
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n";

// Whether a conversation opens with a system message.
bool starts_with_system(const std::vector<Message>& messages) {
  return !messages.empty() && messages.front().role == "system";
}

// `text` with every `what` removed.
std::string without(std::string text, std::string_view what) {
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at)) text.erase(at, what.size());
  return text;
}

// `text` without its trailing whitespace (Python's rstrip(): str.isspace()'s code points).
std::string rstripped(const std::string& text) {
  return text.substr(0, unicode::whitespace_before(text, 0, text.size(), unicode::is_python_space));
}

// `text` without its leading and trailing whitespace: Python's strip(), and so Jinja's trim (Llama 3's, Gemma's
// templates), Meta's and mistral-common's strip() of Llama 2's and Mistral's turns.
std::string stripped(const std::string& text) {
  const std::size_t first = unicode::whitespace_after(text, 0, unicode::is_python_space);
  return text.substr(first, unicode::whitespace_before(text, first, text.size(), unicode::is_python_space) - first);
}

// SmolLM3's system turn's text: the metadata, then the system message's custom instructions (its
// /no_think and /think flags taken out) or the default one, then its empty tool sections -- or, with
// /system_override, the instructions alone.
std::string smollm3_system(const std::vector<Message>& messages) {
  const bool system = starts_with_system(messages);
  const std::string message = system ? messages.front().content : std::string();
  require(message.find("/no_think") != std::string::npos || message.find("/think") == std::string::npos,
          "the smollm3 prompt template writes SmolLM3's non-thinking mode, and the system message's /think turns "
          "thinking on: drop /think (or give token ids rendered with thinking on: jobs/chat_to_ids.py)");
  const std::string instructions = rstripped(without(without(message, "/no_think"), "/think"));
  if (message.find("/system_override") != std::string::npos) {
    return rstripped(without(instructions, "/system_override"));
  }
  return std::string("## Metadata\n\nKnowledge Cutoff Date: June 2025\nToday Date: ") + kSmolLm3Date +
         "\nReasoning Mode: /no_think\n\n## Custom Instructions\n\n" +
         (instructions.empty() ? std::string(kSmolLm3Default) : instructions) +
         "\n\n## Tools\n\n### XML Tools\n\nNone\n\n### Python Tools\n\nNone\n\n";
}

// Leading newlines removed (SmolLM3's content.lstrip("\n") of an assistant turn).
std::string without_leading_newlines(const std::string& text) {
  const std::size_t first = text.find_first_not_of('\n');
  return first == std::string::npos ? std::string() : text.substr(first);
}

bool is_granite(PromptTemplate p) {
  return p == PromptTemplate::Granite30 || p == PromptTemplate::Granite31 || p == PromptTemplate::Granite4;
}

// Whether a chat template writes `token` (eos_token) before its loop over the messages, as the first
// OLMo Instruct's does.
bool writes_first(const std::string& chat_template, const char* token) {
  const std::size_t loop = chat_template.find("for message in messages");
  return loop != std::string::npos && chat_template.rfind(token, loop) != std::string::npos;
}

bool is_llama3(PromptTemplate p) { return p == PromptTemplate::Llama3 || p == PromptTemplate::Llama31; }

bool is_gemma(PromptTemplate p) { return p == PromptTemplate::Gemma || p == PromptTemplate::Gemma3; }

// Command-R's and Aya's turns: <|START_OF_TURN_TOKEN|> role token, the content, <|END_OF_TURN_TOKEN|>.
void cohere_turn(std::vector<std::int32_t>& ids, const char* role, const std::string& content, const Tokenizer& t) {
  ids.push_back(special(t, PromptTemplate::Cohere, "<|START_OF_TURN_TOKEN|>"));
  ids.push_back(special(t, PromptTemplate::Cohere, role));
  append(ids, t.encode(content));
  ids.push_back(special(t, PromptTemplate::Cohere, "<|END_OF_TURN_TOKEN|>"));
}

bool is_deepseek(PromptTemplate p) {
  return p == PromptTemplate::DeepSeekV3 || p == PromptTemplate::DeepSeekR1 || p == PromptTemplate::DeepSeekV31;
}

// A DeepSeek answer without its reasoning: what follows the first </think> in the text (V3.1's rule) or
// the last (`last`: R1's), the whole text without one.
std::string after_think_end(const std::string& text, bool last = false) {
  constexpr std::string_view kThinkEnd = "</think>";
  const std::size_t at = last ? text.rfind(kThinkEnd) : text.find(kThinkEnd);
  return at == std::string::npos ? text : text.substr(at + kThinkEnd.size());
}

// DeepSeek's system text, written right after BOS: V3's template joins every system message with a blank
// line, R1's keeps the last one.
std::string deepseek_system(const std::vector<Message>& messages, bool r1) {
  std::string system;
  bool first = true;
  for (const Message& m : messages) {
    if (m.role != "system") continue;
    system = r1 || first ? m.content : system + "\n\n" + m.content;
    first = false;
  }
  return system;
}

// Kimi's default system message, from the tokenizer's chat template.
std::string kimi_system(const Tokenizer& t) {
  const std::optional<std::string> system = detail::kimi_default_system(t.chat_template());
  require(system.has_value(),
          "the kimi prompt template writes the default system message of the tokenizer's chat "
          "template before a conversation without one, and the tokenizer has no chat template with a literal ",
          detail::kKimiSystemTurn,
          "...<|im_end|> turn: give the conversations a system message of their own, or "
          "token ids (jobs/chat_to_ids.py)");
  return *system;
}

bool is_chatml(PromptTemplate p) {
  return p == PromptTemplate::ChatMl || p == PromptTemplate::Qwen25 || p == PromptTemplate::Qwen3;
}

bool is_olmo3(PromptTemplate p) { return p == PromptTemplate::Olmo3 || p == PromptTemplate::Olmo31; }

// The system turn a ChatML template writes before a conversation that lacks one: Qwen2.5's where the first
// message is not a system one, OLMo 3's where none is; nullopt for none.
std::optional<std::string> chatml_default_system(const std::vector<Message>& messages, PromptTemplate p) {
  if (p == PromptTemplate::Qwen25 && !starts_with_system(messages)) return detail::kQwen25System;
  if (!is_olmo3(p) ||
      std::any_of(messages.begin(), messages.end(), [](const Message& m) { return m.role == "system"; })) {
    return std::nullopt;
  }
  return std::string(p == PromptTemplate::Olmo3 ? detail::kOlmo3System : detail::kOlmo31System) +
         detail::kOlmo3NoFunctions;
}

// Gemma's, Llama 2's and Mistral's formats take roles that alternate from the user's; Gemma's
// (1 and 2) refuses a system message, the others take one first (folded into a user turn).
// Returns the system message's content ("" without one).
std::string check_alternating_roles(const std::vector<Message>& messages, PromptTemplate p) {
  const char* name = prompt_template_name(p);
  const bool system = starts_with_system(messages);
  require(!system || p != PromptTemplate::Gemma, "the gemma prompt template has no system role (Gemma's chat "
          "template refuses one): drop the system message or choose another template");
  for (std::size_t i = system ? 1 : 0; i < messages.size(); ++i) {
    const char* want = (i - (system ? 1 : 0)) % 2 == 0 ? "user" : "assistant";
    require(messages[i].role == want, "the ", name, " prompt template needs the roles to alternate user, "
            "assistant, user, ... (after an optional first system message for gemma3, llama2, mistral* and cohere, "
            "as their chat formats do); message ", i + 1, " is ", messages[i].role);
  }
  return system ? messages.front().content : std::string();
}

// `text` written between the special tokens `before` and `after`: the whitespace either takes
// into its match (Tokenizer::added_token_strip) dropped, as the encoding of the whole rendered
// text drops it.
std::vector<std::int32_t> encode_between(const Tokenizer& t, std::int32_t before, std::string_view text,
                                         std::int32_t after) {
  const std::size_t first = t.added_token_strip(before).right ? unicode::whitespace_after(text, 0) : 0;
  const std::size_t last = t.added_token_strip(after).left ? unicode::whitespace_before(text, first, text.size())
                                                            : text.size();
  return t.encode(text.substr(first, last - first));
}

// Llama 2's chat format (Meta's chat_completion) and Mistral's v1, v3 and v7 instruct formats
// (mistral-common's InstructTokenizerV1 / V3 / V7): user turns "[INST] {content} [/INST]", each
// turn encoded on its own (with a SentencePiece model's dummy prefix), assistant turns as
// responses are written. Llama 2: BOS before each user turn, contents trimmed, the system as
// "<<SYS>>\n{system}\n<</SYS>>\n\n" in the first user turn. Mistral: one BOS, contents as they
// are, the system as "{system}\n\n" in the first user turn (v1) or the last (v3, whose [INST]
// and [/INST] are tokens of their own, not text), or (v7) a turn of its own in [SYSTEM_PROMPT]
// and [/SYSTEM_PROMPT] tokens.
std::vector<std::int32_t> render_inst_prompt(const std::vector<Message>& messages, PromptTemplate p,
                                             const Tokenizer& t) {
  const bool llama2 = p == PromptTemplate::Llama2, v7 = p == PromptTemplate::MistralV7;
  const bool v3 = p == PromptTemplate::MistralV3 || v7;  // markers as tokens
  const std::string system = check_alternating_roles(messages, p);
  const std::size_t first = starts_with_system(messages) ? 1 : 0;
  std::size_t system_turn = first;  // the user turn that carries the system message
  for (std::size_t i = first; v3 && i < messages.size(); ++i) {
    if (messages[i].role == "user") system_turn = i;
  }
  std::vector<std::int32_t> ids;
  if (!llama2 && t.bos_id()) ids.push_back(*t.bos_id());
  if (v7 && first == 1) {
    ids.push_back(special(t, p, "[SYSTEM_PROMPT]"));
    append(ids, t.encode(system));
    ids.push_back(special(t, p, "[/SYSTEM_PROMPT]"));
  }
  for (std::size_t i = first; i < messages.size(); ++i) {
    std::string content = messages[i].content;
    if (messages[i].role == "assistant") {  // as a response is written
      append(ids, render_response(content, p, t));
      continue;
    }
    if (i == system_turn && !v7 && (llama2 ? first == 1 : !system.empty())) {  // mistral-common skips an empty one
      content = llama2 ? "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content : system + "\n\n" + content;
    }
    if (v3) {
      ids.push_back(special(t, p, "[INST]"));
      append(ids, t.encode(content));
      ids.push_back(special(t, p, "[/INST]"));
      continue;
    }
    if (llama2 && t.bos_id()) ids.push_back(*t.bos_id());
    append(ids, t.encode("[INST] " + (llama2 ? stripped(content) : content) + " [/INST]"));
  }
  return ids;
}

// <|start_header_id|> role <|end_header_id|> "\n\n"
void llama3_header(std::vector<std::int32_t>& ids, const std::string& role, const Tokenizer& t) {
  ids.push_back(special(t, PromptTemplate::Llama3, "<|start_header_id|>"));
  append(ids, t.encode(role));
  ids.push_back(special(t, PromptTemplate::Llama3, "<|end_header_id|>"));
}
// GLM-4.5's answer line as its template writes it: "\n" and the text stripped, or nothing where that is empty.
std::string glm45_line(const std::string& text) {
  const std::string answer = stripped(text);
  return answer.empty() ? "" : "\n" + answer;
}

// GLM-4.5's answer text as its template writes an assistant message (prompt_template.h's glm4.5): its
// glm45_line after the message's last </think>, less the line breaks that open it.
std::string glm45_answer(std::string text) {
  if (const std::size_t close = text.rfind("</think>"); close != std::string::npos) {
    text.erase(0, close + std::string_view("</think>").size());
    text.erase(0, std::min(text.find_first_not_of('\n'), text.size()));
  }
  return glm45_line(text);
}

// GLM-4.5's conversation text with thinking off, up to its generation prompt (prompt_template.h's glm4.5).
std::string glm45_prompt(const std::vector<Message>& messages) {
  std::string text = "[gMASK]<sop>";
  for (const Message& m : messages) {
    if (m.role == "system") text += "<|system|>\n" + m.content;
    if (m.role == "user") text += "<|user|>\n" + m.content + (m.content.ends_with("/nothink") ? "" : "/nothink");
    if (m.role == "assistant") text += "<|assistant|>\n<think></think>" + glm45_answer(m.content);
  }
  return text + "<|assistant|>\n<think></think>";
}

// LLaMA-Factory's alpaca template (prompt_template.h's alpaca): the text between EOS tokens encoded as one
// string, as its chat template's rendering is.
std::vector<std::int32_t> render_alpaca_prompt(const std::vector<Message>& messages, const Tokenizer& t) {
  require(t.eos_id().has_value(), "the alpaca prompt template needs the tokenizer's EOS, which it does not name");
  const bool system = starts_with_system(messages);
  std::string text = system ? messages.front().content : std::string(kAlpacaSystem);
  std::vector<std::int32_t> ids;
  for (std::size_t i = system ? 1 : 0; i < messages.size(); ++i) {
    const Message& m = messages[i];
    if (m.role == "user") text += "### Instruction:\n" + m.content + "\n\n### Response:\n";
    if (m.role != "assistant") continue;
    append(ids, t.encode(text + m.content));
    ids.push_back(*t.eos_id());
    text = "\n\n";
  }
  append(ids, t.encode(text));
  return ids;
}

}  // namespace

std::vector<std::int32_t> render_prompt(const std::vector<Message>& messages,
                                        PromptTemplate prompt_template, const Tokenizer& t) {
  if (prompt_template == PromptTemplate::Alpaca) return render_alpaca_prompt(messages, t);
  std::vector<std::int32_t> ids;
  if (prompt_template == PromptTemplate::Glm45) {  // one text, its markers the tokenizer's added tokens
    for (const char* marker : {"[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>"}) {
      special(t, prompt_template, marker);
    }
    return t.encode(glm45_prompt(messages));
  }
  if (is_chatml(prompt_template) || is_olmo3(prompt_template)) {
    const std::int32_t start = special(t, prompt_template, "<|im_start|>");
    const std::int32_t end = special(t, prompt_template, "<|im_end|>");
    const auto turn = [&](const std::string& role, const std::string& content) {
      ids.push_back(start);
      append(ids, t.encode(role + "\n" + content));
      ids.push_back(end);
      append(ids, t.encode("\n"));
    };
    if (const std::optional<std::string> system = chatml_default_system(messages, prompt_template)) {
      turn("system", *system);
    }
    for (const Message& m : messages) turn(m.role, m.content);
    ids.push_back(start);
    // Qwen3's non-thinking mode: an empty think block opens the response.
    const bool no_thinking = prompt_template == PromptTemplate::Qwen3;
    append(ids, t.encode(no_thinking ? "assistant\n<think>\n\n</think>\n\n" : "assistant\n"));
    return ids;
  }
  if (prompt_template == PromptTemplate::SmolLm3) {  // ChatML; the system block always; later system messages dropped
    const std::int32_t start = special(t, prompt_template, "<|im_start|>");
    const std::int32_t end = special(t, prompt_template, "<|im_end|>");
    const auto turn = [&](const std::string& text) {
      ids.push_back(start);
      append(ids, t.encode(text));
      ids.push_back(end);
      append(ids, t.encode("\n"));
    };
    turn("system\n" + smollm3_system(messages));
    for (const Message& m : messages) {
      if (m.role == "user") turn("user\n" + m.content);
      if (m.role == "assistant") turn(kSmolLm3Reply + without_leading_newlines(m.content));
    }
    ids.push_back(start);
    append(ids, t.encode(kSmolLm3Reply));
    return ids;
  }
  if (prompt_template == PromptTemplate::Llama2 || prompt_template == PromptTemplate::Mistral ||
      prompt_template == PromptTemplate::MistralV3 || prompt_template == PromptTemplate::MistralV7) {
    return render_inst_prompt(messages, prompt_template, t);
  }
  if (prompt_template == PromptTemplate::Phi4) {  // no BOS; every user turn ends with the assistant's header
    const std::int32_t start = special(t, prompt_template, "<|im_start|>");
    const std::int32_t sep = special(t, prompt_template, "<|im_sep|>");
    const std::int32_t end = special(t, prompt_template, "<|im_end|>");
    const auto header = [&](const char* role) {
      ids.push_back(start);
      append(ids, t.encode(role));
      ids.push_back(sep);
    };
    for (const Message& m : messages) {
      if (m.role != "assistant") header(m.role == "system" ? "system" : "user");
      append(ids, t.encode(m.content));
      ids.push_back(end);
      if (m.role == "user") header("assistant");
    }
    return ids;
  }
  if (prompt_template == PromptTemplate::Phi4Mini) {  // no BOS, no newlines: <|role|> content <|end|>
    const std::int32_t end = special(t, prompt_template, "<|end|>");
    for (const Message& m : messages) {
      const std::int32_t role = special(t, prompt_template, "<|" + m.role + "|>");
      ids.push_back(role);
      append(ids, encode_between(t, role, m.content, end));
      ids.push_back(end);
    }
    ids.push_back(special(t, prompt_template, "<|assistant|>"));
    return ids;
  }
  if (is_granite(prompt_template)) {  // no BOS; a first system message or the default one (3.1, 4.0)
    const std::int32_t start = special(t, prompt_template, "<|start_of_role|>");
    const std::int32_t role_end = special(t, prompt_template, "<|end_of_role|>");
    const std::int32_t end = special(t, prompt_template, "<|end_of_text|>");
    const auto header = [&](const std::string& role) {
      ids.push_back(start);
      append(ids, encode_between(t, start, role, role_end));
      ids.push_back(role_end);
    };
    const auto turn = [&](const std::string& role, const std::string& content) {
      header(role);
      append(ids, encode_between(t, role_end, content, end));
      ids.push_back(end);
      append(ids, encode_between(t, end, "\n", start));
    };
    const bool system = starts_with_system(messages);
    if (!system && prompt_template == PromptTemplate::Granite31) {
      turn("system", std::string(kGranite31SystemBefore) + kGranite31Date + kGranite31SystemAfter);
    }
    if (!system && prompt_template == PromptTemplate::Granite4) turn("system", detail::kGranite4System);
    for (const Message& m : messages) turn(m.role, m.content);
    header("assistant");
    return ids;
  }
  if (prompt_template == PromptTemplate::Tulu) {  // text markers; an EOS id after each assistant turn
    const auto bos = t.template_bos_id(), eos = t.template_eos_id();  // the template's bos_token, eos_token
    const std::string& chat_template = t.chat_template();
    if (bos && chat_template.find("bos_token") != std::string::npos) ids.push_back(*bos);
    if (eos && writes_first(chat_template, "eos_token")) ids.push_back(*eos);
    // The first OLMo Instruct's template has no system turn: it drops a system message.
    const bool system_turns = chat_template.empty() || chat_template.find("<|system|>") != std::string::npos;
    std::string text;
    for (const Message& m : messages) {
      if (m.role == "system" && !system_turns) continue;
      text += "<|" + m.role + "|>\n" + m.content;
      if (m.role != "assistant") {
        text += "\n";
        continue;
      }
      append(ids, t.encode(text));
      if (eos) ids.push_back(*eos);
      text = "\n";
    }
    append(ids, t.encode(text + "<|assistant|>\n"));
    return ids;
  }
  if (is_deepseek(prompt_template)) {  // BOS, the system text, <｜User｜> and <｜Assistant｜> turns
    const bool r1 = prompt_template == PromptTemplate::DeepSeekR1;
    const bool v31 = prompt_template == PromptTemplate::DeepSeekV31;
    const std::int32_t user = special(t, prompt_template, "<｜User｜>");
    const std::int32_t assistant = special(t, prompt_template, "<｜Assistant｜>");
    const std::int32_t end = special(t, prompt_template, "<｜end▁of▁sentence｜>");
    ids.push_back(special(t, prompt_template, "<｜begin▁of▁sentence｜>"));
    append(ids, t.encode(deepseek_system(messages, r1)));
    bool last_user = false;  // V3.1 opens an assistant turn only after a user message
    for (const Message& m : messages) {
      if (m.role == "user") {
        ids.push_back(user);
        append(ids, t.encode(m.content));
        last_user = true;
      }
      if (m.role == "assistant") {  // R1's and V3.1's histories keep an answer, not its reasoning
        if (!v31 || last_user) ids.push_back(assistant);
        if (v31 && last_user) append(ids, t.encode("</think>"));
        append(ids, t.encode(r1 ? after_think_end(m.content, true) : v31 ? after_think_end(m.content) : m.content));
        ids.push_back(end);
        last_user = false;
      }
    }
    if (v31 && !last_user) return ids;  // V3.1 writes its generation prompt only after a user message
    ids.push_back(assistant);
    if (r1) append(ids, t.encode("<think>\n"));  // R1 reasons first: its think token, as an added token
    if (v31) append(ids, t.encode("</think>"));  // V3.1 without thinking: the think block closed at once
    return ids;
  }
  if (prompt_template == PromptTemplate::DeepSeekV2) {  // BOS, then "User: " / "Assistant: " turns in text
    const std::int32_t end = special(t, prompt_template, "<｜end▁of▁sentence｜>");
    ids.push_back(special(t, prompt_template, "<｜begin▁of▁sentence｜>"));
    std::string text;  // since the last marker
    for (const Message& m : messages) {
      if (m.role == "user") text += "User: " + m.content + "\n\n";
      if (m.role == "system") text += m.content + "\n\n";
      if (m.role == "assistant") {
        append(ids, t.encode(text + "Assistant: " + m.content));
        ids.push_back(end);
        text.clear();
      }
    }
    append(ids, t.encode(text + "Assistant:"));
    return ids;
  }
  if (prompt_template == PromptTemplate::Kimi) {  // no BOS: <|im_{role}|> "{role}" <|im_middle|> "{content}" <|im_end|>
    const std::int32_t middle = special(t, prompt_template, "<|im_middle|>");
    const std::int32_t end = special(t, prompt_template, "<|im_end|>");
    const auto turn = [&](const std::string& role, const std::string& content) {
      ids.push_back(special(t, prompt_template, "<|im_" + role + "|>"));
      append(ids, t.encode(role));
      ids.push_back(middle);
      append(ids, t.encode(content));
      ids.push_back(end);
    };
    if (!starts_with_system(messages)) turn("system", kimi_system(t));
    for (const Message& m : messages) turn(m.role, m.content);
    ids.push_back(special(t, prompt_template, "<|im_assistant|>"));
    append(ids, t.encode("assistant"));
    ids.push_back(middle);
    return ids;
  }
  if (t.bos_id()) ids.push_back(*t.bos_id());
  if (prompt_template == PromptTemplate::Plain) {
    std::string text;
    for (std::size_t i = 0; i < messages.size(); ++i) text += (i ? "\n" : "") + messages[i].content;
    append(ids, t.encode(text));
    return ids;
  }
  if (is_gemma(prompt_template)) {
    const std::string system = check_alternating_roles(messages, prompt_template);
    const bool has_system = starts_with_system(messages);
    const std::int32_t start = special(t, prompt_template, "<start_of_turn>");
    const std::int32_t end = special(t, prompt_template, "<end_of_turn>");
    for (std::size_t i = has_system ? 1 : 0; i < messages.size(); ++i) {
      const Message& m = messages[i];
      // Gemma 3: the system message, as given, and a blank line before the first user text.
      const std::string prefix = i == 1 && has_system ? system + "\n\n" : std::string();
      ids.push_back(start);
      append(ids, t.encode((m.role == "assistant" ? "model" : m.role) + "\n" + prefix + stripped(m.content)));
      ids.push_back(end);
      append(ids, t.encode("\n"));
    }
    ids.push_back(start);
    append(ids, t.encode("model\n"));
    return ids;
  }
  if (prompt_template == PromptTemplate::Cohere) {  // after BOS: a system turn untrimmed, the others stripped
    const std::string system = check_alternating_roles(messages, prompt_template);
    const bool has_system = starts_with_system(messages);
    if (has_system) cohere_turn(ids, "<|SYSTEM_TOKEN|>", system, t);
    for (std::size_t i = has_system ? 1 : 0; i < messages.size(); ++i) {
      const bool user = messages[i].role == "user";
      cohere_turn(ids, user ? "<|USER_TOKEN|>" : "<|CHATBOT_TOKEN|>", stripped(messages[i].content), t);
    }
    ids.push_back(special(t, prompt_template, "<|START_OF_TURN_TOKEN|>"));
    ids.push_back(special(t, prompt_template, "<|CHATBOT_TOKEN|>"));
    return ids;
  }
  if (is_llama3(prompt_template)) {
    std::size_t first = 0;
    if (prompt_template == PromptTemplate::Llama31) {  // its system block, always
      const bool system = starts_with_system(messages);
      llama3_header(ids, "system", t);
      append(ids, t.encode("\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n" +
                           (system ? stripped(messages.front().content) : std::string())));
      ids.push_back(special(t, prompt_template, "<|eot_id|>"));
      first = system ? 1 : 0;
    }
    for (std::size_t i = first; i < messages.size(); ++i) {
      llama3_header(ids, messages[i].role, t);
      append(ids, t.encode("\n\n" + stripped(messages[i].content)));
      ids.push_back(special(t, prompt_template, "<|eot_id|>"));
    }
    llama3_header(ids, "assistant", t);
    append(ids, t.encode("\n\n"));
    return ids;
  }
  for (const Message& m : messages) {
    append(ids, t.encode("<|" + m.role + "|>\n" + m.content));
    if (t.eos_id()) ids.push_back(*t.eos_id());
    append(ids, t.encode("\n"));
  }
  append(ids, t.encode("<|assistant|>\n"));
  return ids;
}

std::vector<std::int32_t> render_response(const std::string& text, PromptTemplate prompt_template,
                                          const Tokenizer& t) {
  if (prompt_template == PromptTemplate::Phi4Mini) {  // after <|assistant|>, before <|end|>
    const std::int32_t end = special(t, prompt_template, "<|end|>");
    std::vector<std::int32_t> ids = encode_between(t, special(t, prompt_template, "<|assistant|>"), text, end);
    ids.push_back(end);
    return ids;
  }
  if (is_granite(prompt_template)) {  // after <|end_of_role|>, before <|end_of_text|>
    const std::int32_t end = special(t, prompt_template, "<|end_of_text|>");
    std::vector<std::int32_t> ids = encode_between(t, special(t, prompt_template, "<|end_of_role|>"), text, end);
    ids.push_back(end);
    return ids;
  }
  if (prompt_template == PromptTemplate::Glm45) {  // after the prompt's </think>, before the next turn's <|user|>
    std::vector<std::int32_t> ids = t.encode(glm45_line(text));
    ids.push_back(special(t, prompt_template, "<|user|>"));
    return ids;
  }
  // llama3 and gemma trim; Llama 2's assistant turn is " {content, trimmed} " before EOS (its
  // space before the text is the SentencePiece dummy prefix the text's own encoding adds);
  // Mistral v3's and v7's drop trailing spaces.
  const bool trim = is_llama3(prompt_template) || is_gemma(prompt_template) || prompt_template == PromptTemplate::Cohere;
  const bool rstrip = prompt_template == PromptTemplate::MistralV3 || prompt_template == PromptTemplate::MistralV7;
  const std::size_t kept = text.find_last_not_of(' ') + 1;  // up to the trailing spaces
  const std::string written = prompt_template == PromptTemplate::SmolLm3       ? without_leading_newlines(text)
                              : prompt_template == PromptTemplate::Llama2      ? stripped(text) + " "
                              : prompt_template == PromptTemplate::DeepSeekV2  ? " " + text
                              : prompt_template == PromptTemplate::DeepSeekV31 ? after_think_end(text)
                              : rstrip                                         ? text.substr(0, kept)
                              : trim                                           ? stripped(text)
                                                                               : text;
  std::vector<std::int32_t> ids = t.encode(written);
  if (const auto end = response_end(prompt_template, t)) ids.push_back(*end);
  return ids;
}

std::string response_text(std::span<const std::int32_t> ids, PromptTemplate prompt_template, const Tokenizer& t) {
  const std::optional<std::int32_t> end = response_end(prompt_template, t);
  if (!ids.empty() && (ids.back() == end || ids.back() == t.eos_id())) ids = ids.first(ids.size() - 1);
  std::string text = t.decode(ids);
  if (prompt_template == PromptTemplate::DeepSeekV2 && text.starts_with(' ')) text.erase(0, 1);
  if (prompt_template == PromptTemplate::Glm45 && text.starts_with('\n')) text.erase(0, 1);
  return text;
}

std::optional<std::int32_t> response_end(PromptTemplate prompt_template, const Tokenizer& t) {
  if (is_llama3(prompt_template)) return special(t, prompt_template, "<|eot_id|>");
  if (is_chatml(prompt_template) || prompt_template == PromptTemplate::Phi4 ||
      prompt_template == PromptTemplate::SmolLm3) {
    return special(t, prompt_template, "<|im_end|>");
  }
  if (is_gemma(prompt_template)) return special(t, prompt_template, "<end_of_turn>");
  if (prompt_template == PromptTemplate::Phi4Mini) return special(t, prompt_template, "<|end|>");
  if (prompt_template == PromptTemplate::Kimi) return special(t, prompt_template, "<|im_end|>");
  if (prompt_template == PromptTemplate::Glm45) return special(t, prompt_template, "<|user|>");
  if (prompt_template == PromptTemplate::Cohere) return special(t, prompt_template, "<|END_OF_TURN_TOKEN|>");
  if (is_granite(prompt_template)) return special(t, prompt_template, "<|end_of_text|>");
  if (prompt_template == PromptTemplate::Tulu) return t.template_eos_id();  // its template's eos_token
  if (is_olmo3(prompt_template)) {  // its template's eos_token, which ends the last message
    const std::optional<std::int32_t> eos = t.template_eos_id();
    require(eos.has_value(), "the ", prompt_template_name(prompt_template),
            " prompt template ends a response with the tokenizer's EOS, and the model's tokenizer has none");
    return eos;
  }
  if (is_deepseek(prompt_template) || prompt_template == PromptTemplate::DeepSeekV2) {
    return special(t, prompt_template, "<｜end▁of▁sentence｜>");
  }
  return t.eos_id();
}

}  // namespace spin::data
