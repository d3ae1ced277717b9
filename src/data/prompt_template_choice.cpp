// choose_prompt_template: the template a name asks for, "auto" resolved by the tokenizer's chat tokens and
// chat template (prompt_template.h says what each choice is and what auto refuses).
#include "data/prompt_template.h"

#include <algorithm>
#include <initializer_list>
#include <iterator>
#include <string>

#include "core/error.h"
#include "data/hf_bpe_tokenizer.h"
#include "data/prompt_template_detail.h"

namespace spin::data {

namespace {
// Which Granite template a chat template writing <|start_of_role|> turns is, by its default system
// message (4.0's, or 3.1-3.3's dated one) or, without one, 3.0's user turn; nullopt for another.
std::optional<PromptTemplate> granite_of(const std::string& chat_template) {
  if (chat_template.find(detail::kGranite4System) != std::string::npos) return PromptTemplate::Granite4;
  if (chat_template.find("Knowledge Cutoff Date: April 2024.") != std::string::npos) return PromptTemplate::Granite31;
  if (chat_template.find("'<|start_of_role|>user<|end_of_role|>' + message['content'] + '<|end_of_text|>") !=
      std::string::npos) {
    return PromptTemplate::Granite30;
  }
  return std::nullopt;
}

// A chat template's text with its "\\n" escapes read as line breaks: the same string to Jinja inside a literal,
// whichever of the two a template (or a copy of it written out as a file) holds.
std::string with_line_breaks(const std::string& chat_template) {
  std::string text;
  for (std::size_t i = 0; i < chat_template.size(); ++i) {
    const bool escape = chat_template[i] == '\\' && i + 1 < chat_template.size() && chat_template[i + 1] == 'n';
    text += escape ? '\n' : chat_template[i];
    i += escape ? 1 : 0;
  }
  return text;
}

// The Tulu format's user turn as its chat templates write it: OLMo 2 Instruct's, Tulu 3's (open-instruct's), or
// the first OLMo Instruct's, whose newline after the turn is the template's own text after the expression (Jinja's
// trim_blocks keeps a newline after "}}").
bool writes_tulu_turns(const std::string& chat_template) {
  const std::string text = with_line_breaks(chat_template);
  return text.find("'<|user|>\n' + message['content'] + '\n'") != std::string::npos ||
         text.find("'<|user|>\n' + message['content'] }}\n") != std::string::npos;
}

// Which OLMo 3 template a chat template is: Olmo 3 Instruct's or Olmo 3.1 Instruct's by its default system turn,
// with the turns spin writes -- a system message as given (open-instruct's "olmo" template appends the
// no-functions sentence to every one), the last message ended by eos_token -- and no think block (the Think
// models'); nullopt for another.
std::optional<PromptTemplate> olmo3_of(const std::string& chat_template) {
  const std::string text = with_line_breaks(chat_template);
  const auto has = [&](const std::string& part) { return text.find(part) != std::string::npos; };
  if (has("<think>") || !has("{{- '<|im_start|>system\n' + message['content'] -}}") ||
      !has("{%- else -%}{{- eos_token -}}") ||
      !has("{{- '<|im_start|>user\n' + message['content'] + '<|im_end|>\n' -}}") ||
      !has(std::string("{{- '") + detail::kOlmo3NoFunctions + "<|im_end|>\n' -}}")) {
    return std::nullopt;
  }
  for (const auto& [system, which] : {std::pair{detail::kOlmo3System, PromptTemplate::Olmo3},
                                      std::pair{detail::kOlmo31System, PromptTemplate::Olmo31}}) {
    if (has(std::string("{{- '<|im_start|>system\n") + system + "' -}}")) return which;
  }
  return std::nullopt;
}

bool has_tokens(const Tokenizer* t, std::initializer_list<const char*> tokens) {
  return t != nullptr && std::all_of(tokens.begin(), tokens.end(), [&](const char* s) { return t->token_id(s); });
}
}  // namespace

PromptTemplate choose_prompt_template(const std::string& name, const Tokenizer* tokenizer) {
  constexpr PromptTemplate kAll[] = {
      PromptTemplate::Chat,       PromptTemplate::Plain,      PromptTemplate::Llama3,     PromptTemplate::Llama31,
      PromptTemplate::ChatMl,     PromptTemplate::Qwen25,     PromptTemplate::Qwen3,      PromptTemplate::Gemma,
      PromptTemplate::Gemma3,     PromptTemplate::Llama2,     PromptTemplate::Mistral,    PromptTemplate::MistralV3,
      PromptTemplate::MistralV7,  PromptTemplate::Phi4,       PromptTemplate::Phi4Mini,   PromptTemplate::Tulu,
      PromptTemplate::Cohere,     PromptTemplate::Granite30,  PromptTemplate::Granite31,  PromptTemplate::Granite4,
      PromptTemplate::SmolLm3,    PromptTemplate::DeepSeekV3, PromptTemplate::DeepSeekR1, PromptTemplate::DeepSeekV31,
      PromptTemplate::DeepSeekV2, PromptTemplate::Kimi,       PromptTemplate::Glm45,      PromptTemplate::Alpaca,
      PromptTemplate::Olmo3,      PromptTemplate::Olmo31};
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
  // OLMo 3's templates (Instruct, Think, open-instruct's): ChatML's markers, the last message ended by
  // <|endoftext|> rather than <|im_end|>, and where a conversation has no system message a default one, different
  // between releases -- Olmo 3 Instruct's and 3.1 Instruct's taken, another refused rather than taken for chatml
  // (or, for the think tokens of its vocabulary, qwen3).
  if (template_has("<functions></functions>") || template_has("built by Ai2")) {
    const std::optional<PromptTemplate> olmo3 = olmo3_of(tokenizer->chat_template());
    refuse(!olmo3.has_value(),
           "chat template is an OLMo 3 one (ChatML with <|endoftext|> ending the last message and a default system "
           "message) other than Olmo 3 Instruct's and Olmo 3.1 Instruct's (a Think model's, with its <think> block, "
           "or open-instruct's)");
    return *olmo3;
  }
  // GLM-4.5's and GLM-4.6's template: its generation prompt's empty think block where thinking is off (the
  // Jinja source's '\n' escape).
  if (has_tokens(tokenizer, {"[gMASK]", "<sop>", "<|user|>", "<|assistant|>"}) && template_has("[gMASK]<sop>") &&
      template_has("<|assistant|>{{- '\\n<think></think>' if (enable_thinking is defined and not enable_thinking)")) {
    return PromptTemplate::Glm45;
  }
  // Other GLM templates (GLM-4-0414's, GLM-4-9B-Chat's: [gMASK]<sop>, then <|system|> / <|user|> /
  // <|assistant|> turns, each role's token followed by a newline, no think block), EXAONE 4.0's ([|user|] ...
  // [|endofturn|] turns, an empty think block before a non-thinking answer) and Seed-OSS's: not Zephyr's,
  // which auto would otherwise fall back to.
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
  // DeepSeek's <｜User｜> ... <｜Assistant｜> ... <｜end▁of▁sentence｜> turns (fullwidth bars): R1's template (R1 and
  // its distilled Qwen and Llama models) by its generation prompt's think block and its history's answers
  // after </think>, V3's by its system messages joined, V3.1's by its thinking switch (</think> after
  // <｜Assistant｜> unless thinking) and its answers after their first </think> -- each as its published text
  // writes it; another (R1's first release, V2.5's) refused rather than taken for one of these; V2-Chat's
  // ("User: " ... "Assistant:" in plain text after <｜begin▁of▁sentence｜>) taken by its template below; Coder's
  // ("### Instruction:") and any other after that BOS refused.
  if (has_tokens(tokenizer, {"<｜User｜>", "<｜Assistant｜>"}) || template_has("<｜Assistant｜>")) {
    if (template_has("{{'<｜Assistant｜><think>\\n'}}") && template_has("content.split('</think>')[-1]")) {
      return PromptTemplate::DeepSeekR1;
    }
    if (template_has("ns.system_prompt + '\\n\\n' + message['content']") &&
        template_has("{{'<｜Assistant｜>'}}") && !template_has("</think>")) {
      return PromptTemplate::DeepSeekV3;
    }
    // (Its system separator as the escaped '\n\n' of tokenizer_config.json or, in copies of the template
    // written out as a file, two line breaks: the same string to Jinja.)
    const bool joins_system = template_has("ns.system_prompt + '\\n\\n' + message['content']") ||
                              template_has("ns.system_prompt + '\n\n' + message['content']");
    if (joins_system && template_has("{{'<｜Assistant｜>'}}") && template_has("{{'</think>'}}") &&
        template_has("content.split('</think>', 1)[1]") && template_has("ns.is_last_user") &&
        has_tokens(tokenizer, {"</think>"})) {
      return PromptTemplate::DeepSeekV31;
    }
    refuse(true,
           "chat template is a DeepSeek one (<｜User｜> and <｜Assistant｜> turns) other than R1's, V3's and V3.1's");
  }
  // DeepSeek-V2-Chat's and DeepSeek LLM Chat's: "User: " and "Assistant: " in text after <｜begin▁of▁sentence｜>.
  if (has_tokens(tokenizer, {"<｜begin▁of▁sentence｜>"}) &&
      template_has("{{ 'User: ' + message['content'] + '\\n\\n' }}") &&
      template_has("{{ 'Assistant: ' + message['content'] + eos_token }}") &&
      template_has("{{ message['content'] + '\\n\\n' }}") && template_has("{{ 'Assistant:' }}")) {
    return PromptTemplate::DeepSeekV2;
  }
  refuse(has_tokens(tokenizer, {"<｜begin▁of▁sentence｜>"}),
         "chat format is DeepSeek's (V2's \"User: \" and \"Assistant:\" turns, or Coder's \"### Instruction:\" and "
         "\"### Response:\", after <｜begin▁of▁sentence｜>)");
  // Moonshot AI's turns (Moonlight, Kimi K2): <|im_user|>user<|im_middle|> ... <|im_end|>, a default system
  // turn the chat template writes -- taken from it; a thinking model's template (<think>) refused.
  if (has_tokens(tokenizer, {"<|im_user|>", "<|im_assistant|>", "<|im_system|>", "<|im_middle|>", "<|im_end|>"})) {
    refuse(!template_has("<|im_assistant|>assistant<|im_middle|>") || template_has("<think>") ||
               !detail::kimi_default_system(tokenizer->chat_template()),
           "chat template is a Moonshot one (<|im_user|>, <|im_assistant|> and <|im_middle|> turns) other than "
           "Moonlight's and Kimi K2's (its generation prompt <|im_assistant|>assistant<|im_middle|>, a literal "
           "default system message, no <think>)");
    return PromptTemplate::Kimi;
  }
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
    const bool qwen25 = tokenizer->chat_template().find(detail::kQwen25System) != std::string::npos;
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
    case PromptTemplate::DeepSeekV3: return "deepseek-v3";
    case PromptTemplate::DeepSeekR1: return "deepseek-r1";
    case PromptTemplate::DeepSeekV31:
      return "deepseek-v3.1";
    case PromptTemplate::DeepSeekV2: return "deepseek-v2";
    case PromptTemplate::Kimi: return "kimi";
    case PromptTemplate::Glm45: return "glm4.5";
    case PromptTemplate::Alpaca:
      return "alpaca";
    case PromptTemplate::Olmo3:
      return "olmo3";
    case PromptTemplate::Olmo31:
      return "olmo3.1";
  }
  return "?";
}
}  // namespace spin::data
