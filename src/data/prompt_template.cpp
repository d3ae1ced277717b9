#include "data/prompt_template.h"

#include <algorithm>
#include <initializer_list>
#include <iterator>
#include <string>

#include "core/error.h"
#include "data/hf_bpe_tokenizer.h"
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

// Qwen2.5-Instruct's default system message.
constexpr const char* kQwen25System = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

// Granite 4.0's default system message, and Granite 3.1-3.3's around the day their template runs
// (strftime_now('%B %d, %Y')) -- spin writes one fixed day, Granite 3.3's release, so that a data
// set tokenizes the same any day (and a resumed run reads what the first run read).
constexpr const char* kGranite4System =
    "You are a helpful assistant. Please ensure responses are professional, accurate, and safe.";
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

// Whether a conversation opens with a system message.
bool starts_with_system(const std::vector<Message>& messages) {
  return !messages.empty() && messages.front().role == "system";
}

// `text` with every `what` removed.
std::string without(std::string text, std::string_view what) {
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at)) text.erase(at, what.size());
  return text;
}

// `text` without its trailing whitespace (Python's rstrip()).
std::string rstripped(const std::string& text) {
  return text.substr(0, unicode::whitespace_before(text, 0, text.size()));
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

// Which Granite template a chat template writing <|start_of_role|> turns is, by its default system
// message (4.0's, or 3.1-3.3's dated one) or, without one, 3.0's user turn; nullopt for another.
std::optional<PromptTemplate> granite_of(const std::string& chat_template) {
  if (chat_template.find(kGranite4System) != std::string::npos) return PromptTemplate::Granite4;
  if (chat_template.find("Knowledge Cutoff Date: April 2024.") != std::string::npos) return PromptTemplate::Granite31;
  if (chat_template.find("'<|start_of_role|>user<|end_of_role|>' + message['content'] + '<|end_of_text|>") !=
      std::string::npos) {
    return PromptTemplate::Granite30;
  }
  return std::nullopt;
}

// The Tulu format's user turn as its chat templates write it, the template's "\\n" escapes read
// as newlines: OLMo 2 Instruct's, Tulu 3's (open-instruct's), or the first OLMo Instruct's, whose
// newline after the turn is the template's own text after the expression (Jinja's trim_blocks
// keeps a newline after "}}").
bool writes_tulu_turns(const std::string& chat_template) {
  std::string text;
  for (std::size_t i = 0; i < chat_template.size(); ++i) {
    const bool escape = chat_template[i] == '\\' && i + 1 < chat_template.size() && chat_template[i + 1] == 'n';
    text += escape ? '\n' : chat_template[i];
    i += escape ? 1 : 0;
  }
  return text.find("'<|user|>\n' + message['content'] + '\n'") != std::string::npos ||
         text.find("'<|user|>\n' + message['content'] }}\n") != std::string::npos;
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

bool is_chatml(PromptTemplate p) {
  return p == PromptTemplate::ChatMl || p == PromptTemplate::Qwen25 || p == PromptTemplate::Qwen3;
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

bool has_tokens(const Tokenizer* t, std::initializer_list<const char*> tokens) {
  return t != nullptr && std::all_of(tokens.begin(), tokens.end(), [&](const char* s) { return t->token_id(s); });
}

// Leading and trailing whitespace removed (Jinja's trim, as Llama-3's and Gemma's templates apply it).
std::string trimmed(const std::string& text) {
  const char* space = " \t\n\r\f\v";
  const std::size_t first = text.find_first_not_of(space);
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(space) - first + 1);
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
    append(ids, t.encode("[INST] " + (llama2 ? trimmed(content) : content) + " [/INST]"));
  }
  return ids;
}

// <|start_header_id|> role <|end_header_id|> "\n\n"
void llama3_header(std::vector<std::int32_t>& ids, const std::string& role, const Tokenizer& t) {
  ids.push_back(special(t, PromptTemplate::Llama3, "<|start_header_id|>"));
  append(ids, t.encode(role));
  ids.push_back(special(t, PromptTemplate::Llama3, "<|end_header_id|>"));
}
}  // namespace

PromptTemplate choose_prompt_template(const std::string& name, const Tokenizer* tokenizer) {
  constexpr PromptTemplate kAll[] = {
      PromptTemplate::Chat,      PromptTemplate::Plain,     PromptTemplate::Llama3,    PromptTemplate::Llama31,
      PromptTemplate::ChatMl,    PromptTemplate::Qwen25,    PromptTemplate::Qwen3,     PromptTemplate::Gemma,
      PromptTemplate::Gemma3,    PromptTemplate::Llama2,    PromptTemplate::Mistral,   PromptTemplate::MistralV3,
      PromptTemplate::MistralV7, PromptTemplate::Phi4,      PromptTemplate::Phi4Mini,  PromptTemplate::Tulu,
      PromptTemplate::Cohere,    PromptTemplate::Granite30, PromptTemplate::Granite31, PromptTemplate::Granite4,
      PromptTemplate::SmolLm3};
  std::string choices = "auto";
  for (std::size_t i = 0; i < std::size(kAll); ++i) {
    if (name == prompt_template_name(kAll[i])) return kAll[i];
    choices += (i + 1 < std::size(kAll) ? ", " : " or ") + std::string(prompt_template_name(kAll[i]));
  }
  require(name == "auto", "unknown prompt template \"", name, "\" (", choices, ")");
  // Tulu's format in text markers over another family's tokens (Tulu 3: Llama 3's): its template decides.
  if (tokenizer != nullptr && writes_tulu_turns(tokenizer->chat_template())) return PromptTemplate::Tulu;
  // Phi-4-mini: Phi-3's chat tokens in a byte-level BPE (o200k's). Phi-3 / Phi-3.5-mini: the same
  // tokens added over a SentencePiece model, whose exact tokenization around them (the pieces'
  // dummy prefix after them) spin has not checked against the published tokenizer -- refused
  // rather than approximated.
  if (has_tokens(tokenizer, {"<|system|>", "<|user|>", "<|assistant|>", "<|end|>"}) &&
      dynamic_cast<const HfBpeTokenizer*>(tokenizer) != nullptr) {
    return PromptTemplate::Phi4Mini;
  }
  require(!has_tokens(tokenizer, {"<|user|>", "<|assistant|>", "<|end|>"}),
          "the tokenizer has Phi-3's chat tokens (<|user|>, <|assistant|>, <|end|>) over a SentencePiece model, "
          "whose chat format spin does not implement: choose --template plain (data.template) or give token ids "
          "(jobs/chat_to_ids.py renders conversations with the model's own template)");
  // Granite's <|start_of_role|>role<|end_of_role|>content<|end_of_text|> turns: 3.0's, 3.1-3.3's or
  // 4.0's template by its default system message; another Granite template refused rather than
  // taken for one of these.
  if (has_tokens(tokenizer, {"<|start_of_role|>", "<|end_of_role|>"}) ||
      (tokenizer != nullptr && tokenizer->chat_template().find("<|start_of_role|>") != std::string::npos)) {
    const std::optional<PromptTemplate> granite = granite_of(tokenizer->chat_template());
    require(granite.has_value(), "the tokenizer's chat format is Granite's (<|start_of_role|> ... <|end_of_role|>) "
            "but its chat template is none spin knows (Granite 3.0's, 3.1-3.3's or 4.0's): choose --template "
            "granite3.0, granite3.1 or granite4 (data.template) knowingly, or give token ids (jobs/chat_to_ids.py "
            "renders conversations with the model's own template)");
    return *granite;
  }
  // Formats spin does not write, refused rather than taken for another (`what` names the format).
  const auto refuse = [](bool seen, const char* what) {
    require(!seen, "the tokenizer's ", what,
            ", which spin does not implement: give token ids (jobs/chat_to_ids.py "
            "renders conversations with the model's own template) or choose --template (data.template) knowingly");
  };
  const auto template_has = [&](const char* text) {
    return tokenizer != nullptr && tokenizer->chat_template().find(text) != std::string::npos;
  };
  // OLMo 3's templates (Instruct, Think): ChatML's markers, the assistant's turn ended by
  // <|endoftext|> rather than <|im_end|>, and where a conversation has no system message a
  // default one naming Ai2, different between releases -- not chatml.
  refuse(template_has("built by Ai2"),
         "chat template is OLMo 3's (ChatML with <|endoftext|> ending the assistant's "
         "turn and a default system message)");
  // GLM-4's templates ([gMASK]<sop>, then <|system|> / <|user|> / <|assistant|> turns, each role's token
  // followed by a newline), EXAONE 4.0's ([|user|] ... [|endofturn|] turns, an empty think block
  // before a non-thinking answer) and Seed-OSS's: not Zephyr's, which auto would otherwise fall back to.
  refuse(has_tokens(tokenizer, {"[gMASK]", "<sop>"}) || template_has("[gMASK]<sop>"),
         "chat format is GLM's ([gMASK]<sop>, <|user|> and <|assistant|> turns)");
  refuse(has_tokens(tokenizer, {"[|user|]", "[|assistant|]", "[|endofturn|]"}) || template_has("[|endofturn|]"),
         "chat format is EXAONE's ([|user|] and [|assistant|] turns ended by [|endofturn|])");
  refuse(has_tokens(tokenizer, {"<seed:bos>", "<seed:eos>"}) || template_has("<seed:bos>"),
         "chat format is Seed-OSS's (<seed:bos>role ... <seed:eos> turns, a thinking budget)");
  // dots.llm1's (<|userprompt|> ... <|endofuserprompt|><|response|> ... <|endofresponse|>) over a Qwen2
  // vocabulary whose ChatML tokens auto would otherwise take.
  refuse(has_tokens(tokenizer, {"<|userprompt|>", "<|endofuserprompt|>"}) || template_has("<|endofuserprompt|>"),
         "chat format is dots.llm1's (<|userprompt|> ... <|endofuserprompt|><|response|> turns)");
  // DeepSeek's: V3's / R1's / V2.5's (<｜User｜> ... <｜Assistant｜> ... <｜end▁of▁sentence｜>, fullwidth bars;
  // R1's think block), V2-Chat's ("User: " ... "Assistant:" in plain text) -- every one after the
  // <｜begin▁of▁sentence｜> its tokenizers have.
  refuse(has_tokens(tokenizer, {"<｜begin▁of▁sentence｜>"}) ||
             has_tokens(tokenizer, {"<｜User｜>", "<｜Assistant｜>"}) || template_has("<｜Assistant｜>"),
         "chat format is DeepSeek's (V3's, R1's and V2.5's <｜User｜> and <｜Assistant｜> turns, V2's \"User: \" "
         "and \"Assistant:\")");
  if (has_tokens(tokenizer, {"<|START_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>", "<|USER_TOKEN|>", "<|CHATBOT_TOKEN|>"})) {
    // Command R7B's and later Command models' templates wrap the turns in a default system preamble
    // and <|START_RESPONSE|> / <|END_RESPONSE|> markers: not the format spin writes -- refused rather
    // than taken for Command-R's and Aya's.
    refuse(template_has("<|START_RESPONSE|>") || template_has("Preamble"),
           "chat template is a later Command model's (a default system preamble, <|START_RESPONSE|> markers)");
    return PromptTemplate::Cohere;
  }
  if (has_tokens(tokenizer, {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"})) {
    return has_tokens(tokenizer, {"<|eom_id|>"}) ? PromptTemplate::Llama31 : PromptTemplate::Llama3;
  }
  if (has_tokens(tokenizer, {"<|im_start|>", "<|im_end|>", "<|im_sep|>"})) return PromptTemplate::Phi4;
  // SmolLM3: ChatML's and the think tokens, under a template that opens with a metadata system
  // block (the date, the reasoning mode): decided by the template, before Qwen3's tokens.
  if (tokenizer != nullptr && tokenizer->chat_template().find("Reasoning Mode") != std::string::npos) {
    return PromptTemplate::SmolLm3;
  }
  if (has_tokens(tokenizer, {"<|im_start|>", "<|im_end|>", "<think>", "</think>"})) return PromptTemplate::Qwen3;
  if (has_tokens(tokenizer, {"<|im_start|>", "<|im_end|>"})) {
    const bool qwen25 = tokenizer->chat_template().find(kQwen25System) != std::string::npos;
    return qwen25 ? PromptTemplate::Qwen25 : PromptTemplate::ChatMl;
  }
  if (has_tokens(tokenizer, {"<start_of_turn>", "<end_of_turn>"})) {
    return has_tokens(tokenizer, {"<start_of_image>"}) ? PromptTemplate::Gemma3 : PromptTemplate::Gemma;
  }
  if (has_tokens(tokenizer, {"[INST]", "[/INST]"})) {
    // v7 and later put a system message in [SYSTEM_PROMPT] tokens: Tekken files say their version,
    // a tokenizer.json's chat template writes the token.
    const bool v7 = mistral_version_number(tokenizer->mistral_version()) >= 7 ||
                    tokenizer->chat_template().find("[SYSTEM_PROMPT]") != std::string::npos;
    return v7 && has_tokens(tokenizer, {"[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]"}) ? PromptTemplate::MistralV7
                                                                              : PromptTemplate::MistralV3;
  }
  return PromptTemplate::Chat;
}

const char* prompt_template_name(PromptTemplate t) {
  switch (t) {
    case PromptTemplate::Chat: return "chat";
    case PromptTemplate::Plain: return "plain";
    case PromptTemplate::Llama3: return "llama3";
    case PromptTemplate::Llama31: return "llama3.1";
    case PromptTemplate::ChatMl: return "chatml";
    case PromptTemplate::Qwen25: return "qwen2.5";
    case PromptTemplate::Qwen3: return "qwen3";
    case PromptTemplate::Gemma: return "gemma";
    case PromptTemplate::Gemma3: return "gemma3";
    case PromptTemplate::Llama2: return "llama2";
    case PromptTemplate::Mistral: return "mistral";
    case PromptTemplate::MistralV3: return "mistral-v3";
    case PromptTemplate::MistralV7: return "mistral-v7";
    case PromptTemplate::Phi4: return "phi4";
    case PromptTemplate::Phi4Mini: return "phi4-mini";
    case PromptTemplate::Tulu: return "tulu";
    case PromptTemplate::Cohere: return "cohere";
    case PromptTemplate::Granite30: return "granite3.0";
    case PromptTemplate::Granite31: return "granite3.1";
    case PromptTemplate::Granite4: return "granite4";
    case PromptTemplate::SmolLm3: return "smollm3";
  }
  return "?";
}

std::vector<std::int32_t> render_prompt(const std::vector<Message>& messages,
                                        PromptTemplate prompt_template, const Tokenizer& t) {
  std::vector<std::int32_t> ids;
  if (is_chatml(prompt_template)) {
    const std::int32_t start = special(t, prompt_template, "<|im_start|>");
    const std::int32_t end = special(t, prompt_template, "<|im_end|>");
    const auto turn = [&](const std::string& role, const std::string& content) {
      ids.push_back(start);
      append(ids, t.encode(role + "\n" + content));
      ids.push_back(end);
      append(ids, t.encode("\n"));
    };
    if (prompt_template == PromptTemplate::Qwen25 && (messages.empty() || messages.front().role != "system")) {
      turn("system", kQwen25System);
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
    if (!system && prompt_template == PromptTemplate::Granite4) turn("system", kGranite4System);
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
      append(ids, t.encode((m.role == "assistant" ? "model" : m.role) + "\n" + prefix + trimmed(m.content)));
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
      cohere_turn(ids, user ? "<|USER_TOKEN|>" : "<|CHATBOT_TOKEN|>", trimmed(messages[i].content), t);
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
                           (system ? trimmed(messages.front().content) : std::string())));
      ids.push_back(special(t, prompt_template, "<|eot_id|>"));
      first = system ? 1 : 0;
    }
    for (std::size_t i = first; i < messages.size(); ++i) {
      llama3_header(ids, messages[i].role, t);
      append(ids, t.encode("\n\n" + trimmed(messages[i].content)));
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
  // llama3 and gemma trim; Llama 2's assistant turn is " {content, trimmed} " before EOS (its
  // space before the text is the SentencePiece dummy prefix the text's own encoding adds);
  // Mistral v3's and v7's drop trailing spaces.
  const bool trim = is_llama3(prompt_template) || is_gemma(prompt_template) || prompt_template == PromptTemplate::Cohere;
  const bool rstrip = prompt_template == PromptTemplate::MistralV3 || prompt_template == PromptTemplate::MistralV7;
  const std::size_t kept = text.find_last_not_of(' ') + 1;  // up to the trailing spaces
  const std::string written = prompt_template == PromptTemplate::SmolLm3  ? without_leading_newlines(text)
                              : prompt_template == PromptTemplate::Llama2 ? trimmed(text) + " "
                              : rstrip                                    ? text.substr(0, kept)
                              : trim                                      ? trimmed(text)
                                                                          : text;
  std::vector<std::int32_t> ids = t.encode(written);
  if (const auto end = response_end(prompt_template, t)) ids.push_back(*end);
  return ids;
}

std::optional<std::int32_t> response_end(PromptTemplate prompt_template, const Tokenizer& t) {
  if (is_llama3(prompt_template)) return special(t, prompt_template, "<|eot_id|>");
  if (is_chatml(prompt_template) || prompt_template == PromptTemplate::Phi4 ||
      prompt_template == PromptTemplate::SmolLm3) {
    return special(t, prompt_template, "<|im_end|>");
  }
  if (is_gemma(prompt_template)) return special(t, prompt_template, "<end_of_turn>");
  if (prompt_template == PromptTemplate::Phi4Mini) return special(t, prompt_template, "<|end|>");
  if (prompt_template == PromptTemplate::Cohere) return special(t, prompt_template, "<|END_OF_TURN_TOKEN|>");
  if (is_granite(prompt_template)) return special(t, prompt_template, "<|end_of_text|>");
  if (prompt_template == PromptTemplate::Tulu) return t.template_eos_id();  // its template's eos_token
  return t.eos_id();
}

}  // namespace spin::data
