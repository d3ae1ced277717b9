#include "data/prompt_template.h"

#include "core/error.h"

namespace spin::data {

namespace {
void append(std::vector<std::int32_t>& ids, const std::vector<std::int32_t>& more) {
  ids.insert(ids.end(), more.begin(), more.end());
}
}  // namespace

PromptTemplate parse_prompt_template(const std::string& name) {
  if (name == "chat") return PromptTemplate::Chat;
  if (name == "plain") return PromptTemplate::Plain;
  fail("unknown prompt template \"", name, "\" (chat or plain)");
}

std::vector<std::int32_t> render_prompt(const std::vector<Message>& messages,
                                        PromptTemplate prompt_template, const Tokenizer& t) {
  std::vector<std::int32_t> ids;
  if (t.bos_id()) ids.push_back(*t.bos_id());
  if (prompt_template == PromptTemplate::Plain) {
    std::string text;
    for (std::size_t i = 0; i < messages.size(); ++i) text += (i ? "\n" : "") + messages[i].content;
    append(ids, t.encode(text));
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

std::vector<std::int32_t> render_response(const std::string& text, const Tokenizer& t) {
  std::vector<std::int32_t> ids = t.encode(text);
  if (t.eos_id()) ids.push_back(*t.eos_id());
  return ids;
}

}  // namespace spin::data
